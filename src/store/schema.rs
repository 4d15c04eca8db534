//! The tables, as diesel sees them. Only types both engines share appear here: ids are text
//! UUIDs and times are UTC `TIMESTAMP`s.

diesel::table! {
    clinics (id) {
        id -> Text,
        name -> Text,
        crisis_message -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        clinic_id -> Nullable<Text>,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}

diesel::joinable!(users -> clinics (clinic_id));
diesel::allow_tables_to_appear_in_same_query!(clinics, users);
