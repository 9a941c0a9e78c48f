//! Text to `Pattern`. A single left-to-right scan, so every error can say which field it
//! was in and what was wrong there.

use super::Pattern;
use crate::error::{Result, WotdError};
use crate::rvq::{CODES, LEVELS};

/// Errors quote at most this many characters of the input, so a pasted paragraph does not
/// become a paragraph-long message.
const QUOTE_LIMIT: usize = 64;

pub fn parse(input: &str) -> Result<Pattern> {
    let fail = |field: usize, reason: String| WotdError::InvalidPattern { input: quote(input, QUOTE_LIMIT), field, reason };

    let mut chars = input.char_indices().skip_while(|(_, c)| c.is_whitespace());
    let close = match chars.next() {
        None => return Err(fail(0, "empty pattern".into())),
        Some((_, '[')) => ']',
        Some((_, '(')) => ')',
        Some((_, c)) => return Err(fail(0, format!("a pattern starts with [ or (, not {c:?}"))),
    };
    let open = if close == ']' { '[' } else { '(' };

    let mut fields: Vec<&str> = Vec::with_capacity(LEVELS);
    let mut start = None;
    let mut rest = None;
    for (at, c) in chars.by_ref() {
        let begin = *start.get_or_insert(at);
        match c {
            ',' => {
                fields.push(&input[begin..at]);
                start = None;
            }
            '[' | '(' => return Err(fail(fields.len() + 1, "nested brackets are not allowed".into())),
            ']' | ')' if c == close => {
                fields.push(&input[begin..at]);
                rest = Some(&input[at + c.len_utf8()..]);
                break;
            }
            ']' | ')' => return Err(fail(0, format!("mismatched brackets: {open} is closed by {c}"))),
            _ => {}
        }
    }
    let Some(rest) = rest else {
        return Err(fail(0, format!("missing closing {close}")));
    };
    if !rest.trim().is_empty() {
        return Err(fail(0, format!("unexpected {} after the closing {close}", quote(rest.trim(), 16))));
    }

    if fields.len() == 1 && fields[0].trim().is_empty() {
        fields.clear();
    }
    if fields.len() != LEVELS {
        return Err(fail(0, format!("expected {LEVELS} fields, found {}", fields.len())));
    }
    let mut out = [None; LEVELS];
    for (i, text) in fields.iter().enumerate() {
        out[i] = field(text.trim()).map_err(|reason| fail(i + 1, reason))?;
    }
    Ok(Pattern::new(out).expect("fields were range-checked"))
}

fn field(text: &str) -> std::result::Result<Option<u8>, String> {
    let max = CODES - 1;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text == "*" {
        Ok(None)
    } else if text.is_empty() {
        Err("empty field; write a code 0-31 or *".into())
    } else if digits(text) {
        // Compare as text beyond two significant digits, so "99999999999999999999" reports
        // its range instead of overflowing.
        let significant = text.trim_start_matches('0');
        match significant.parse::<usize>() {
            Ok(v) if significant.len() <= 2 && v <= max => Ok(Some(v as u8)),
            _ if significant.is_empty() => Ok(Some(0)),
            _ => Err(format!("{} is out of range 0-{max}", quote(text, 16))),
        }
    } else if text.strip_prefix('-').is_some_and(digits) {
        Err(format!("{} is out of range 0-{max}", quote(text, 16)))
    } else {
        Err(format!("{:?} is not a number or *", quote(text, 16)))
    }
}

/// `s` cut to at most `limit` characters, marked with an ellipsis when cut.
fn quote(s: &str, limit: usize) -> String {
    match s.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(fields: [Option<u8>; 4]) -> Pattern {
        Pattern::new(fields).unwrap()
    }

    #[test]
    fn accepts_every_documented_form() {
        let full = p([Some(2), Some(9), Some(17), Some(5)]);
        let wild = p([Some(2), None, Some(17), None]);
        for (text, want) in [
            ("[2,9,17,5]", full),
            ("(2, 9, 17, 5)", full),
            ("  [ 2 ,9,\t17 ,\n5 ]  ", full),
            ("[2,*,17,*]", wild),
            ("( 2 , * , 17 , * )", wild),
            ("[*,*,*,*]", p([None; 4])),
            ("[0,31,00,031]", p([Some(0), Some(31), Some(0), Some(31)])),
        ] {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn errors_name_the_field_and_the_reason() {
        let table: &[(&str, usize, &str)] = &[
            ("[32,0,0,0]", 1, "32 is out of range 0-31"),
            ("[0,0,32,0]", 3, "32 is out of range 0-31"),
            ("[-1,0,0,0]", 1, "-1 is out of range 0-31"),
            ("[1,2,3,4,5]", 0, "expected 4 fields, found 5"),
            ("[1,2,3]", 0, "expected 4 fields, found 3"),
            ("[]", 0, "expected 4 fields, found 0"),
            ("[1,ab,3,4]", 2, "\"ab\" is not a number or *"),
            ("[1,2,3,x*]", 4, "\"x*\" is not a number or *"),
            ("[1,2 3,3,4]", 2, "\"2 3\" is not a number or *"),
            ("[1,,3,4]", 2, "empty field; write a code 0-31 or *"),
            ("", 0, "empty pattern"),
            ("   \t ", 0, "empty pattern"),
            ("[[1,2,3,4]]", 1, "nested brackets are not allowed"),
            ("[1,(2),3,4]", 2, "nested brackets are not allowed"),
            ("[1,2,3,4)", 0, "mismatched brackets: [ is closed by )"),
            ("(1,2,3,4]", 0, "mismatched brackets: ( is closed by ]"),
            ("[1,2,3,4", 0, "missing closing ]"),
            ("1,2,3,4", 0, "a pattern starts with [ or (, not '1'"),
            ("[1,2,3,4] x", 0, "unexpected x after the closing ]"),
            ("[99999999999999999999999,0,0,0]", 1, "9999999999999999… is out of range 0-31"),
        ];
        for &(input, field, reason) in table {
            match parse(input) {
                Err(WotdError::InvalidPattern { input: i, field: f, reason: r }) => {
                    assert_eq!((i.as_str(), f, r.as_str()), (input, field, reason), "{input:?}")
                }
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn full_message_reads_as_documented() {
        assert_eq!(
            parse("[32,0,0,0]").unwrap_err().to_string(),
            "invalid pattern \"[32,0,0,0]\": field 1: 32 is out of range 0-31"
        );
        assert_eq!(parse("").unwrap_err().to_string(), "invalid pattern \"\": empty pattern");
    }

    #[test]
    fn long_inputs_are_quoted_shortened() {
        let long = format!("[{}]", "a".repeat(500));
        let WotdError::InvalidPattern { input, reason, .. } = parse(&long).unwrap_err() else { panic!() };
        assert_eq!(input.chars().count(), QUOTE_LIMIT + 1);
        assert!(input.ends_with('…'));
        assert_eq!(reason, "expected 4 fields, found 1");
    }

    fn arb_pattern() -> impl Strategy<Value = Pattern> {
        proptest::array::uniform4(proptest::option::of(0u8..32)).prop_map(|f| Pattern::new(f).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_parses_or_is_an_invalid_pattern(s in any::<String>()) {
            match parse(&s) {
                Ok(_) | Err(WotdError::InvalidPattern { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error kind: {e:?}"),
            }
        }

        #[test]
        fn near_miss_text_parses_or_is_an_invalid_pattern(s in r"[\[\]()0-9*, \-a\t]{0,24}") {
            match parse(&s) {
                Ok(p) => prop_assert_eq!(parse(&p.to_string()).unwrap(), p),
                Err(WotdError::InvalidPattern { field, .. }) => prop_assert!(field <= s.matches(',').count() + 1),
                Err(e) => prop_assert!(false, "unexpected error kind: {e:?}"),
            }
        }

        #[test]
        fn formatted_patterns_parse_back_to_themselves(pat in arb_pattern()) {
            prop_assert_eq!(parse(&pat.to_string()).unwrap(), pat);
        }

        #[test]
        fn whitespace_between_tokens_changes_nothing(pat in arb_pattern(), pads in proptest::collection::vec("[ \t\n]{0,3}", 10), round in any::<bool>()) {
            let body: Vec<String> = pat.fields().iter().enumerate().map(|(i, f)| {
                let code = f.map_or("*".to_string(), |c| c.to_string());
                format!("{}{code}{}", pads[2 * i], pads[2 * i + 1])
            }).collect();
            let (o, c) = if round { ('(', ')') } else { ('[', ']') };
            let text = format!("{}{o}{}{c}{}", pads[8], body.join(","), pads[9]);
            prop_assert_eq!(parse(&text).unwrap(), pat);
        }
    }
}
