DROP TABLE integration_webhooks;
DROP TABLE github_issues;
DROP TABLE github_links;
DROP TABLE integration_tokens;
DROP TABLE oauth_states;
