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
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(groups -> users (created_by));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(group_invites -> groups (group_id));
diesel::joinable!(group_invites -> users (invited_by));
diesel::joinable!(projects -> groups (group_id));
diesel::joinable!(projects -> users (created_by));
diesel::joinable!(project_members -> projects (project_id));
diesel::joinable!(project_members -> users (user_id));
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
    groups,
    group_members,
    group_invites,
    projects,
    project_members,
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
);
