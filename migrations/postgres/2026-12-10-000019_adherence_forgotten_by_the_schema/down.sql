DROP TRIGGER assessments_forget_adherence_update ON assessments;
DROP TRIGGER assessments_forget_adherence_insert ON assessments;
DROP TRIGGER sessions_forget_adherence_update ON sessions;
DROP TRIGGER sessions_forget_adherence_insert ON sessions;
DROP TRIGGER courses_forget_adherence_update ON courses;
DROP TRIGGER courses_forget_adherence_insert ON courses;
DROP FUNCTION ko_forget_course_adherence();
