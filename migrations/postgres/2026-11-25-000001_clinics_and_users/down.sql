DROP TABLE users;
DROP TABLE clinics;
