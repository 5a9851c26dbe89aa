//! Safe, unique names for flow documents, used as tar member names and object keys.
//!
//! A name is `flows/<type>/<name>--<id>.json`, each part reduced to characters every common
//! filesystem and object store accepts: no `..`, no leading `/`, no control or reserved characters,
//! bounded length. The id keeps names unique; a clash left after sanitizing gets a numeric suffix.

use std::collections::HashSet;

const MAX_NAME_BYTES: usize = 80;
const MAX_ID_BYTES: usize = 64;
const MAX_TYPE_BYTES: usize = 32;

/// Hands out a distinct safe path for each flow of one run.
#[derive(Debug, Default)]
pub struct MemberNamer {
    used: HashSet<String>,
}

impl MemberNamer {
    /// The path for a flow of type `flow_type` named `name` with id `id`, never handed out before.
    pub fn name_for(&mut self, flow_type: &str, name: &str, id: &str) -> String {
        let t = sanitize(&flow_type.to_lowercase(), MAX_TYPE_BYTES, "unknown-type");
        let n = sanitize(name, MAX_NAME_BYTES, "unnamed");
        let i = sanitize(id, MAX_ID_BYTES, "no-id");
        let base = format!("flows/{t}/{n}--{i}");
        let mut candidate = format!("{base}.json");
        let mut n = 2u32;
        while !self.used.insert(candidate.clone()) {
            candidate = format!("{base}-{n}.json");
            n += 1;
        }
        candidate
    }
}

/// Keeps letters, digits (any script), `-`, `_` and `.`; turns everything else into `_`; collapses
/// runs of `_`; trims leading/trailing `.`, `_` and `-`; truncates on a character boundary.
pub fn sanitize(input: &str, max_bytes: usize, fallback: &str) -> String {
    let mut out = String::with_capacity(input.len().min(max_bytes));
    for c in input.chars() {
        let keep = c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
        let c = if keep { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        if c == '.' && out.ends_with('.') {
            // ".." never survives, whatever surrounds it.
            continue;
        }
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches(|c| matches!(c, '.' | '_' | '-'));
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_absolute_names_become_plain_names() {
        let mut n = MemberNamer::default();
        let p = n.name_for("INBOUNDCALL", "../../etc/passwd", "abc");
        assert_eq!(p, "flows/inboundcall/etc_passwd--abc.json");
        let p = n.name_for("BOT", "/root/..", "../x");
        assert!(!p.contains(".."), "{p}");
        assert!(!p[6..].contains('/') || p.matches('/').count() == 2, "{p}");
    }

    #[test]
    fn control_and_reserved_characters_are_replaced() {
        assert_eq!(
            sanitize("a\u{0}b\nc:d*e?f<g>h|i\"j\\k", 80, "x"),
            "a_b_c_d_e_f_g_h_i_j_k"
        );
    }

    #[test]
    fn unicode_letters_are_kept_and_long_names_truncated_on_a_char_boundary() {
        assert_eq!(sanitize("Файл 日本", 80, "x"), "Файл_日本");
        let long = "é".repeat(300);
        let s = sanitize(&long, 80, "x");
        assert!(s.len() <= 80 && s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn same_names_never_collide() {
        let mut n = MemberNamer::default();
        let a = n.name_for("BOT", "Same", "id1");
        let b = n.name_for("BOT", "Same", "id2");
        let c = n.name_for("BOT", "Same", "id1");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }

    #[test]
    fn empty_parts_get_fallbacks() {
        let mut n = MemberNamer::default();
        assert_eq!(n.name_for("", "...", ""), "flows/unknown-type/unnamed--no-id.json");
    }
}
