//! Diesel table definitions for the whole schema, shared by both backends.
//!
//! Written to match `migrations/{postgres,sqlite}`: timestamps use `Ts` and JSON uses `Json`
//! (see [`crate::db::types`]) so one definition serves PostgreSQL and SQLite; `diesel print-schema`
//! would emit backend-specific types.

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Nullable<Text>,
        password_scheme -> Nullable<Text>,
        user_type -> Text,
        avatar_url -> Nullable<Text>,
        phone -> Nullable<Text>,
        timezone -> Nullable<Text>,
        preferences -> Json,
        google_sub -> Nullable<Text>,
        email_verified -> Bool,
        is_active -> Bool,
        failed_login_count -> Integer,
        first_failed_login_at -> Nullable<Ts>,
        locked_until -> Nullable<Ts>,
        last_login_at -> Nullable<Ts>,
        last_seen_at -> Nullable<Ts>,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    refresh_tokens (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Text,
        family_id -> Text,
        device_name -> Nullable<Text>,
        device_fingerprint -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Ts,
        last_used_at -> Ts,
        expires_at -> Ts,
        revoked_at -> Nullable<Ts>,
        replaced_by -> Nullable<Text>,
        revoked_by -> Nullable<Text>,
        revocation_reason -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    groups (id) {
        id -> Text,
        kind -> Text,
        name -> Text,
        description -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    group_members (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
        role -> Text,
        joined_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    group_invites (id) {
        id -> Text,
        group_id -> Text,
        email -> Text,
        role -> Text,
        invited_by -> Nullable<Text>,
        invited_at -> Ts,
        status -> Text,
        responded_at -> Nullable<Ts>,
        message -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    projects (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        group_id -> Nullable<Text>,
        status -> Text,
        priority -> Text,
        created_by -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
        channel_id -> Nullable<Text>,
        channel_linked_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    project_members (project_id, user_id) {
        project_id -> Text,
        user_id -> Text,
        role -> Text,
        joined_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    files (id) {
        id -> Text,
        owner_id -> Text,
        project_id -> Nullable<Text>,
        original_name -> Text,
        stored_name -> Text,
        storage_key -> Text,
        size -> BigInt,
        mime_type -> Text,
        sniffed_type -> Nullable<Text>,
        description -> Nullable<Text>,
        tags -> Json,
        is_public -> Bool,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    conversations (id) {
        id -> Text,
        kind -> Text,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        group_id -> Nullable<Text>,
        project_id -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
        last_message_at -> Nullable<Ts>,
        is_archived -> Bool,
        dm_key -> Nullable<Text>,
        metadata -> Json,
        last_seq -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    messages (id) {
        id -> Text,
        conversation_id -> Text,
        author_id -> Nullable<Text>,
        seq -> BigInt,
        content -> Text,
        message_type -> Text,
        priority -> Text,
        reply_to_id -> Nullable<Text>,
        thread_root_id -> Nullable<Text>,
        mentions -> Json,
        attachments -> Json,
        metadata -> Json,
        created_at -> Ts,
        edited_at -> Nullable<Ts>,
        deleted_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    conversation_participants (conversation_id, user_id) {
        conversation_id -> Text,
        user_id -> Text,
        role -> Text,
        joined_at -> Ts,
        last_read_at -> Nullable<Ts>,
        last_read_seq -> Nullable<BigInt>,
        last_read_message_id -> Nullable<Text>,
        is_muted -> Bool,
        is_pinned -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    message_reactions (message_id, user_id, reaction) {
        message_id -> Text,
        user_id -> Text,
        reaction -> Text,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    dm_receipts (message_id, user_id) {
        message_id -> Text,
        user_id -> Text,
        read_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    notifications (id) {
        id -> Text,
        user_id -> Text,
        kind -> Text,
        title -> Text,
        message -> Text,
        data -> Json,
        priority -> Text,
        is_read -> Bool,
        read_at -> Nullable<Ts>,
        action_url -> Nullable<Text>,
        snoozed_until -> Nullable<Ts>,
        expires_at -> Nullable<Ts>,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    collab_documents (room) {
        room -> Text,
        state -> Binary,
        size_bytes -> BigInt,
        compacted_through -> BigInt,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    collab_updates (id) {
        id -> BigInt,
        room -> Text,
        data -> Binary,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    security_events (id) {
        id -> Text,
        event_type -> Text,
        severity -> Text,
        user_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        details -> Json,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    ip_blocks (ip) {
        ip -> Text,
        reason -> Nullable<Text>,
        blocked_until -> Nullable<Ts>,
        created_at -> Ts,
        blocked_by -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    ip_allowlist (ip) {
        ip -> Text,
        reason -> Nullable<Text>,
        until -> Nullable<Ts>,
        created_by -> Nullable<Text>,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    organization_teams (team_id) {
        team_id -> Text,
        organization_id -> Text,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(groups -> users (created_by));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(group_invites -> groups (group_id));
diesel::joinable!(group_invites -> users (invited_by));
diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    project_tasks (id) {
        id -> Text,
        project_id -> Text,
        title -> Text,
        description -> Text,
        status -> Text,
        priority -> Text,
        assigned_to -> Nullable<Text>,
        due_date -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
        completed_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    project_milestones (id) {
        id -> Text,
        project_id -> Text,
        title -> Text,
        description -> Text,
        due_date -> Nullable<Text>,
        status -> Text,
        created_by -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
        completed_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    project_activities (id) {
        id -> Text,
        project_id -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        entity_type -> Text,
        entity_id -> Text,
        entity_title -> Text,
        action -> Text,
        metadata -> Json,
        created_at -> Ts,
    }
}

diesel::joinable!(projects -> groups (group_id));
diesel::joinable!(projects -> users (created_by));
diesel::joinable!(project_members -> projects (project_id));
diesel::joinable!(project_members -> users (user_id));
diesel::joinable!(project_tasks -> projects (project_id));
diesel::joinable!(project_milestones -> projects (project_id));
diesel::joinable!(project_activities -> projects (project_id));
diesel::joinable!(project_activities -> users (user_id));
diesel::joinable!(files -> users (owner_id));
diesel::joinable!(files -> projects (project_id));
diesel::joinable!(conversations -> groups (group_id));
diesel::joinable!(conversations -> projects (project_id));
diesel::joinable!(conversations -> users (created_by));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(messages -> users (author_id));
diesel::joinable!(conversation_participants -> conversations (conversation_id));
diesel::joinable!(conversation_participants -> users (user_id));
diesel::joinable!(conversation_participants -> messages (last_read_message_id));
diesel::joinable!(message_reactions -> messages (message_id));
diesel::joinable!(message_reactions -> users (user_id));
diesel::joinable!(dm_receipts -> messages (message_id));
diesel::joinable!(dm_receipts -> users (user_id));
diesel::joinable!(notifications -> users (user_id));
diesel::joinable!(security_events -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_tokens,
    ip_allowlist,
    groups,
    group_members,
    group_invites,
    projects,
    project_members,
    project_tasks,
    project_milestones,
    project_activities,
    files,
    conversations,
    messages,
    conversation_participants,
    message_reactions,
    dm_receipts,
    notifications,
    collab_documents,
    collab_updates,
    security_events,
    ip_blocks,
    organization_teams,
);

// OAuth integrations (issue 13). Kept in one block, with its own `allow_tables…` list, so it merges
// cleanly beside other modules' tables.

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    oauth_states (state_hash) {
        state_hash -> Text,
        user_id -> Text,
        provider -> Text,
        code_verifier_enc -> Nullable<Text>,
        redirect_uri -> Text,
        created_at -> Ts,
        expires_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    integration_tokens (user_id, provider) {
        user_id -> Text,
        provider -> Text,
        access_token_enc -> Text,
        refresh_token_enc -> Nullable<Text>,
        token_type -> Text,
        scopes -> Text,
        expires_at -> Nullable<Ts>,
        provider_user_id -> Nullable<Text>,
        provider_login -> Nullable<Text>,
        provider_email -> Nullable<Text>,
        provider_name -> Nullable<Text>,
        metadata -> Json,
        status -> Text,
        last_used_at -> Nullable<Ts>,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    github_links (id) {
        id -> Text,
        user_id -> Text,
        project_id -> Text,
        owner -> Text,
        repo -> Text,
        full_name -> Text,
        sync_issues -> Bool,
        auto_create_tasks -> Bool,
        sync_status -> Text,
        last_synced_at -> Nullable<Ts>,
        last_error -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    github_issues (link_id, number) {
        link_id -> Text,
        number -> BigInt,
        github_id -> BigInt,
        title -> Text,
        body -> Nullable<Text>,
        state -> Text,
        labels -> Json,
        assignees -> Json,
        html_url -> Text,
        created_at -> Nullable<Text>,
        updated_at -> Nullable<Text>,
        closed_at -> Nullable<Text>,
        synced_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::types::sql_types::{Json, Ts};

    integration_webhooks (id) {
        id -> Text,
        provider -> Text,
        event_type -> Text,
        delivery_id -> Nullable<Text>,
        payload -> Text,
        ip -> Nullable<Text>,
        received_at -> Ts,
    }
}

diesel::joinable!(github_issues -> github_links (link_id));
diesel::joinable!(github_links -> projects (project_id));

diesel::allow_tables_to_appear_in_same_query!(
    oauth_states,
    integration_tokens,
    github_links,
    github_issues,
    integration_webhooks,
);
diesel::allow_tables_to_appear_in_same_query!(github_links, projects);
