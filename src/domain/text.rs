//! Text a person typed: what may be stored and shown back.
//!
//! Control characters are refused everywhere: a NUL cannot be stored by PostgreSQL at all
//! (SQLite would keep it), and the others corrupt logs, CSV exports and terminals. Notes keep
//! the line breaks and tabs a person types into a text box; a Windows client's CRLF becomes LF.

use crate::domain::RuleBroken;

/// The rules of [`Shape::Line`] and [`Shape::Note`] as the contract states them (JSON Schema
/// `pattern`; utoipa takes only literals, so the fields repeat these and a test of the document
/// holds every free-text field to one of them). "Required" adds: not only whitespace.
pub mod pattern {
    pub const LINE: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
    pub const REQUIRED_LINE: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";
    pub const NOTE: &str = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";
    pub const REQUIRED_NOTE: &str = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";
}

/// What shape of text a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One line: a name, a reason, a short message.
    Line,
    /// Free text: line breaks and tabs allowed.
    Note,
}

impl Shape {
    fn allows(self, c: char) -> bool {
        !c.is_control() || (self == Shape::Note && matches!(c, '\n' | '\t'))
    }

    fn rule(self) -> &'static str {
        match self {
            Shape::Line => "must not contain control characters",
            Shape::Note => "must not contain control characters other than line breaks and tabs",
        }
    }
}

/// Trims `raw` and checks it: `None` when nothing but whitespace was sent.
pub fn optional(
    field: &str,
    raw: &str,
    shape: Shape,
    max_chars: usize,
) -> Result<Option<String>, RuleBroken> {
    let text = raw.replace("\r\n", "\n");
    let text = text.trim();
    if !text.chars().all(|c| shape.allows(c)) {
        return Err(RuleBroken::new(field, shape.rule()));
    }
    if text.chars().count() > max_chars {
        return Err(RuleBroken::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Like [`optional`], for a field that must say something.
pub fn required(
    field: &str,
    raw: &str,
    shape: Shape,
    max_chars: usize,
) -> Result<String, RuleBroken> {
    optional(field, raw, shape, max_chars)?
        .ok_or_else(|| RuleBroken::new(field, format!("must be 1 to {max_chars} characters")))
}

/// True when `raw` holds no control character at all: for values that are never stored as
/// text (a password, an invite code) but must not reach a query either.
pub fn is_plain(raw: &str) -> bool {
    !raw.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 12 (4): control characters are refused in every text field; notes keep line breaks
    /// and tabs; blank optional text is absent; the length counts characters.
    #[test]
    fn text_rules() {
        use Shape::*;
        const LINE: &str = "must not contain control characters";
        const NOTE: &str = "must not contain control characters other than line breaks and tabs";
        type Expected = Result<Option<&'static str>, &'static str>;
        let cases: &[(&str, Shape, usize, Expected)] = &[
            ("  Harbour clinic ", Line, 100, Ok(Some("Harbour clinic"))),
            ("   ", Line, 100, Ok(None)),
            ("a\u{0}b", Line, 100, Err(LINE)),
            ("a\u{0}b", Note, 100, Err(NOTE)),
            ("line one\nline two", Line, 100, Err(LINE)),
            (
                "line one\r\nline two\tend",
                Note,
                100,
                Ok(Some("line one\nline two\tend")),
            ),
            ("bell\u{7}", Note, 100, Err(NOTE)),
            ("lone\rreturn", Note, 100, Err(NOTE)),
            ("escape\u{1b}[31m", Line, 100, Err(LINE)),
            ("c1\u{85}inside", Line, 100, Err(LINE)),
            ("del\u{7f}", Line, 100, Err(LINE)),
            ("Zürich — ok", Line, 100, Ok(Some("Zürich — ok"))),
            ("ééééé", Line, 4, Err("must be at most 4 characters")),
            ("éééé", Line, 4, Ok(Some("éééé"))),
        ];
        for (raw, shape, max, expected) in cases {
            let got = optional("f", raw, *shape, *max).map_err(|b| b.rule);
            let expected = expected.map(|t| t.map(String::from)).map_err(String::from);
            assert_eq!(got, expected, "{raw:?} as {shape:?}");
        }
        assert_eq!(
            required("reason", " ", Line, 500).unwrap_err(),
            RuleBroken::new("reason", "must be 1 to 500 characters")
        );
        assert!(is_plain("lantern orbit kettle"));
        assert!(!is_plain("lantern\u{0}"));
    }

    /// The contract's patterns never admit what the rules refuse: a text that fits the pattern
    /// is accepted, and every control character the rule refuses breaks the pattern.
    #[test]
    fn the_patterns_state_the_rules() {
        let mut samples: Vec<String> = (0u32..=0xA0)
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        samples.extend(
            [
                "",
                " ",
                "\t",
                "\n",
                " x ",
                "x\r\ny",
                "\u{2028}",
                "\u{a0}",
                "Zürich — ok",
            ]
            .map(String::from),
        );
        let rules = [
            (pattern::LINE, Shape::Line, false),
            (pattern::REQUIRED_LINE, Shape::Line, true),
            (pattern::NOTE, Shape::Note, false),
            (pattern::REQUIRED_NOTE, Shape::Note, true),
        ];
        for (rule, shape, required) in rules {
            let pattern = regex::Regex::new(rule).unwrap();
            for sample in &samples {
                let accepted = if required {
                    super::required("f", sample, shape, 100).is_ok()
                } else {
                    optional("f", sample, shape, 100).is_ok()
                };
                if pattern.is_match(sample) {
                    assert!(
                        accepted,
                        "{rule} admits {sample:?}, which {shape:?} refuses"
                    );
                }
                if sample.chars().any(|c| !shape.allows(c)) {
                    assert!(!pattern.is_match(sample), "{rule} admits {sample:?}");
                }
            }
        }
    }
}
