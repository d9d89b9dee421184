DROP TABLE IF EXISTS organization_teams;
