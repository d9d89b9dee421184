DROP TABLE project_activities;
DROP TABLE project_milestones;
DROP TABLE project_tasks;
