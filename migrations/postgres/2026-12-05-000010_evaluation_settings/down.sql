DROP TABLE evaluation_settings;
