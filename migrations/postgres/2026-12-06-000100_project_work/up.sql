-- Tasks, milestones and the activity feed of a project (issue 12). They live and die with it.
CREATE TABLE project_tasks (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description  TEXT NOT NULL DEFAULT '',
    -- Kept as the client sent it: the frontend sends both `in-progress` and `in_progress`.
    status       TEXT NOT NULL DEFAULT 'todo'
                 CHECK (status IN ('todo', 'in-progress', 'in_progress', 'review', 'completed')),
    priority     TEXT NOT NULL DEFAULT 'medium'
                 CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    assigned_to  TEXT,
    due_date     TEXT,
    created_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);
CREATE INDEX project_tasks_project_created_idx ON project_tasks (project_id, created_at);

CREATE TABLE project_milestones (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description  TEXT NOT NULL DEFAULT '',
    due_date     TEXT,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'in_progress', 'in-progress', 'completed')),
    created_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);
CREATE INDEX project_milestones_project_idx ON project_milestones (project_id, created_at);

CREATE TABLE project_activities (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    user_id      TEXT REFERENCES users (id) ON DELETE SET NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    entity_title TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL,
    metadata     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX project_activities_project_created_idx ON project_activities (project_id, created_at);
