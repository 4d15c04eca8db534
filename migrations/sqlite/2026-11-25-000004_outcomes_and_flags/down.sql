DROP TABLE flags;
DROP TABLE course_outcomes;
DROP TABLE session_outcomes;
