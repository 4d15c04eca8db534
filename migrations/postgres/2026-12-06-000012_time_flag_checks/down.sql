DROP TABLE time_flag_checks;
