DROP TABLE course_adherence;
