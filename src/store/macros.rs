//! Query shapes that every aggregate shares, written once.

/// Restricts a boxed query to one [`super::Page`] in `(time, id)` order.
macro_rules! page_of {
    ($query:expr, $time:expr, $id:expr, $page:expr) => {
        match &$page.after {
            Some((at, id)) => {
                $query.filter($time.gt(*at).or($time.eq(*at).and($id.gt(id.clone()))))
            }
            None => $query,
        }
        .order(($time.asc(), $id.asc()))
        .limit($page.limit)
    };
}

/// Restricts a boxed query of `$table` to the changes after a [`super::Position`] (when
/// given) and below a horizon (when given), in order of change position: the sync order,
/// which no commit lands behind.
macro_rules! changes_after {
    ($query:expr, $table:ident, $after:expr, $horizon:expr) => {{
        let mut query = $query;
        if let Some($crate::store::Position { change_seq, id }) = $after {
            // The lower bound the index seeks to; then past the last record given.
            query = query.filter($table::change_seq.ge(*change_seq));
            query = match id {
                Some(id) => query.filter(
                    $table::change_seq
                        .gt(*change_seq)
                        .or($table::id.gt(id.clone())),
                ),
                None => query.filter($table::change_seq.gt(*change_seq)),
            };
        }
        if let Some(horizon) = $horizon {
            query = query.filter($table::change_seq.lt(*horizon));
        }
        query.order(($table::change_seq.asc(), $table::id.asc()))
    }};
}

/// Runs a boxed query of `$table` over a [`super::Window`], one [`super::Page`] at a time:
/// in the records' own time order for a range, in order of change position for sync (where
/// the window's own position pages, and `$page` gives only the limit).
macro_rules! in_window {
    ($conn:expr, $query:expr, $table:ident, $time:ident, $window:expr, $page:expr) => {{
        let query = $query;
        match $window {
            $crate::store::Window::Range($crate::store::TimeRange { from, to }) => {
                let mut query = query;
                if let Some(from) = from {
                    query = query.filter($table::$time.ge(*from));
                }
                if let Some(to) = to {
                    query = query.filter($table::$time.lt(*to));
                }
                page_of!(query, $table::$time, $table::id, $page).load($conn)
            }
            $crate::store::Window::Changes {
                changed_after,
                after,
                horizon,
            } => {
                let mut query = query;
                if let Some(at) = changed_after {
                    query = query.filter($table::updated_at.gt(*at));
                }
                changes_after!(query, $table, after, horizon)
                    .limit($page.limit)
                    .load($conn)
            }
        }
    }};
}

/// Lists one patient's records of a table in a [`super::Window`]; a range leaves out records
/// entered in error, sync returns them.
macro_rules! list_for_patient {
    ($conn:expr, $table:ident, $time:ident, $row:ty, $patient:expr, $window:expr, $page:expr) => {{
        let mut query = $table::table
            .filter($table::patient_id.eq($patient.to_owned()))
            .select(<$row>::as_select())
            .into_boxed();
        if matches!($window, $crate::store::Window::Range(_)) {
            query = query.filter($table::deleted_at.is_null());
        }
        in_window!($conn, query, $table, $time, $window, $page)
    }};
}

/// One record of a patient-owned table by id, when its patient is within the scope.
macro_rules! find_in_scope {
    ($conn:expr, $table:ident, $row:ty, $scope:expr, $id:expr) => {{
        let query = $table::table
            .inner_join($crate::store::schema::patients::table)
            .filter($table::id.eq($id.to_owned()))
            .select(<$row>::as_select())
            .into_boxed();
        in_scope!(query, $scope)
            .first::<$row>($conn)
            .map_err($crate::store::StoreError::from)
    }};
}

/// Replaces a versioned row when the stored version is `$expected`; 412 otherwise.
macro_rules! replace_versioned {
    ($conn:expr, $table:ident, $row:expr, $expected:expr) => {{
        let updated = diesel::update(
            $table::table
                .find(&$row.id)
                .filter($table::version.eq($expected)),
        )
        .set($row)
        .execute($conn)?;
        if updated == 0 {
            return Err($crate::store::StoreError::Stale);
        }
        Ok(())
    }};
}

/// A patient's records of one table for an export, oldest first by `$time`: the live ones; or,
/// with `since`, every one changed after it, removed ones included, so that a receiver of
/// changes learns of a removal.
macro_rules! of_patient_since {
    ($conn:expr, $table:ident, $time:ident, $row:ty, $patient:expr, $since:expr) => {{
        let query = $table::table
            .filter($table::patient_id.eq($patient))
            .select(<$row>::as_select())
            .into_boxed();
        let query = match $since {
            Some(since) => query.filter($table::updated_at.gt(since)),
            None => query.filter($table::deleted_at.is_null()),
        };
        Ok(query
            .order(($table::$time.asc(), $table::id.asc()))
            .load($conn)?)
    }};
}
