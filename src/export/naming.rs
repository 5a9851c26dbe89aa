//! Safe, unique names for flow documents, used as tar member names and object keys.
//!
//! A flow's documents are `flows/<type>/<name>--<id>.json` (latest, or latest and published when
//! they are one version), `….published.json` and `….yaml`, each part reduced to characters every common
//! filesystem and object store accepts: no `..`, no leading `/`, no control or reserved characters,
//! bounded length. The id keeps names unique; a clash left after sanitizing gets a numeric suffix.

use std::collections::HashSet;

const MAX_NAME_BYTES: usize = 80;
const MAX_ID_BYTES: usize = 64;
const MAX_TYPE_BYTES: usize = 32;

/// Hands out a distinct safe path for each flow of one run. It remembers the paths handed out
/// by a 64-bit hash rather than by name (50,000 flows' names would be tens of megabytes): two
/// paths that share a hash only cost the second a numeric suffix, never a clash.
#[derive(Debug, Default)]
pub struct MemberNamer {
    used: HashSet<u64>,
}

/// A 64-bit hash of a member path, keyed the same in every run (so a run's names do not depend
/// on chance): what a run remembers of 50,000 paths instead of the paths.
pub(crate) fn path_hash(path: &str) -> u64 {
    path_hash_of(path, "")
}

/// [`path_hash`] of `base` + `suffix`, without building the string: the bytes of the whole path,
/// so `x.published` + `.json` is `x` + `.published.json`.
fn path_hash_of(base: &str, suffix: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(base.as_bytes());
    h.write(suffix.as_bytes());
    h.finish()
}

/// The suffixes of a flow's documents; a base is unique only if all of them are.
const SUFFIXES: [&str; 3] = [".json", ".published.json", ".yaml"];

impl MemberNamer {
    /// The paths for a flow of type `flow_type` named `name` with id `id`, never handed out before.
    pub fn paths_for(&mut self, flow_type: &str, name: &str, id: &str) -> FlowPaths {
        let t = sanitize(&flow_type.to_lowercase(), MAX_TYPE_BYTES, "unknown-type");
        let n = sanitize(name, MAX_NAME_BYTES, "unnamed");
        let i = sanitize(id, MAX_ID_BYTES, "no-id");
        let base = format!("flows/{t}/{n}--{i}");
        let mut candidate = base.clone();
        let mut n = 2u32;
        while SUFFIXES
            .iter()
            .any(|s| self.used.contains(&path_hash_of(&candidate, s)))
        {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        for s in SUFFIXES {
            self.used.insert(path_hash_of(&candidate, s));
        }
        FlowPaths { base: candidate }
    }

    /// The path of the main (`.json`) document for a flow; see [`MemberNamer::paths_for`].
    pub fn name_for(&mut self, flow_type: &str, name: &str, id: &str) -> String {
        self.paths_for(flow_type, name, id).json()
    }
}

/// Where one flow's documents go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowPaths {
    base: String,
}

impl FlowPaths {
    /// The paths of the flow whose document is at `path` (any of its documents).
    pub fn from_document_path(path: &str) -> FlowPaths {
        let base = SUFFIXES.iter().rev().find_map(|s| path.strip_suffix(s)).unwrap_or(path);
        FlowPaths { base: base.to_string() }
    }

    /// The latest configuration (or latest and published, when they are one version).
    pub fn json(&self) -> String {
        format!("{}{}", self.base, SUFFIXES[0])
    }

    /// The published configuration, when it differs from the latest.
    pub fn published_json(&self) -> String {
        format!("{}{}", self.base, SUFFIXES[1])
    }

    /// Archy YAML of the published version.
    pub fn yaml(&self) -> String {
        format!("{}{}", self.base, SUFFIXES[2])
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
    fn a_flow_whose_name_looks_like_another_flows_published_document_does_not_collide() {
        let mut n = MemberNamer::default();
        let a = n.paths_for("BOT", "Same", "id");
        let b = n.paths_for("BOT", "Same", "id.published");
        let c = n.paths_for("BOT", "Same--id", "published");
        let all = [
            a.json(),
            a.published_json(),
            a.yaml(),
            b.json(),
            b.published_json(),
            c.json(),
            c.yaml(),
        ];
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
    }

    #[test]
    fn empty_parts_get_fallbacks() {
        let mut n = MemberNamer::default();
        assert_eq!(n.name_for("", "...", ""), "flows/unknown-type/unnamed--no-id.json");
    }
}
