//! The reconcile is a pipeline and the local API server a stack of layers: no module cycles in
//! `src/controller` nor in the devcluster crate, so a step never calls a later one back. Every `crate::`, `super::`
//! and `self::` path (in `use` trees and inline), and in a parent every path through a child it
//! declares, is an edge from the file's module to the module it names, cut one level below the
//! group's root: `crate::controller::apply::Kind` is `apply`, `crate::controller::Context` is
//! `mod` (mod.rs), `crate::rbac::escalation::X` is `rbac`. Re-exports are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn find(s: &[u8], from: usize, pat: &[u8]) -> usize {
    from + s[from..].windows(pat.len()).position(|w| w == pat).unwrap_or(s.len() - from)
}

/// The source with comments, strings and chars blanked (newlines kept, so lines still count).
fn blank(src: &str) -> String {
    let (s, mut out, mut i) = (src.as_bytes(), src.as_bytes().to_vec(), 0);
    while i < s.len() {
        let end = match s[i] {
            b'/' if s[i..].starts_with(b"//") => find(s, i, b"\n"),
            b'/' if s[i..].starts_with(b"/*") => find(s, i, b"*/") + 2,
            b'"' => {
                let mut j = i + 1;
                while j < s.len() && s[j] != b'"' {
                    j += 1 + (s[j] == b'\\') as usize;
                }
                j + 1
            }
            b'r' if (i == 0 || !word(s[i - 1]) || s[i - 1] == b'b')
                && s[i + 1..].iter().find(|&&b| b != b'#') == Some(&b'"') =>
            {
                let hashes = s[i + 1..].iter().take_while(|&&b| b == b'#').count();
                find(s, i + 2 + hashes, format!("\"{}", "#".repeat(hashes)).as_bytes()) + 1 + hashes
            }
            // A char ('a', '\n', '{'), not a lifetime ('a).
            b'\'' if s[i + 1] == b'\\' || s[i + 2] == b'\'' || !word(s[i + 1]) => {
                find(s, i + 2 + (s[i + 1] == b'\\') as usize, b"'") + 1
            }
            _ => i + 1,
        };
        out[i..end].iter_mut().filter(|b| end > i + 1 && **b != b'\n').for_each(|b| *b = b' ');
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The leaves of a `use` tree without spaces: `a::{b,c::{d}}` gives `a::b`, `a::c::d`.
fn leaves(tree: &str) -> Vec<String> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in tree.char_indices().chain([(tree.len(), ',')]) {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        if c == ',' && depth == 0 {
            let item = &tree[start..i];
            match item.find('{') {
                Some(b) => {
                    out.extend(leaves(&item[b + 1..item.len() - 1]).iter().map(|l| format!("{}{l}", &item[..b])))
                }
                None => out.extend((!item.is_empty()).then(|| item.to_string())),
            }
            start = i + 1;
        }
    }
    out
}

/// The edges between the modules one level below `root/prefix`, each with a place it is seen.
fn edges(root: &Path, prefix: &[&str], skip: &str) -> BTreeMap<(String, String), String> {
    let (mut files, mut dirs) = (Vec::new(), vec![root.join(prefix.join("/"))]);
    while let Some(d) = dirs.pop() {
        for p in std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()) {
            if p.is_dir() && !p.ends_with(skip) {
                dirs.push(p)
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p)
            }
        }
    }
    let module = |f: &Path| -> Vec<String> {
        let m: Vec<String> =
            f.strip_prefix(root).unwrap().with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let own = matches!(m.last().map(String::as_str), Some("mod" | "lib"));
        m[..m.len() - own as usize].to_vec()
    };
    let known: BTreeSet<String> = files.iter().filter_map(|f| module(f).get(prefix.len()).cloned()).collect();
    let node = |abs: &[String]| {
        let inside = abs.len() >= prefix.len() && abs.iter().zip(prefix).all(|(a, p)| a == p);
        inside.then(|| abs.get(prefix.len()).filter(|n| known.contains(*n)).cloned().unwrap_or_else(|| "mod".into()))
    };
    let mut edges = BTreeMap::new();
    for f in &files {
        let (file_mod, mut code) = (module(f), blank(&std::fs::read_to_string(f).unwrap()));
        let starts = |code: &str, kw: &str| -> Vec<usize> {
            code.match_indices(kw).map(|(at, _)| at).filter(|&at| at == 0 || !word(code.as_bytes()[at - 1])).collect()
        };
        let (mut paths, mut inline, mut children) = (Vec::new(), Vec::new(), BTreeSet::new());
        for at in starts(&code, "mod ") {
            let rest = code[at + 4..].trim_start();
            let name: String = rest.bytes().take_while(|&b| word(b)).map(char::from).collect();
            let open = code.len() - rest[name.len()..].trim_start().len();
            match code.as_bytes().get(open) {
                Some(b';') => {
                    children.insert(name);
                }
                Some(b'{') => {
                    let mut depth = 0;
                    let close = (open..code.len()).find(|&j| {
                        depth += match code.as_bytes()[j] {
                            b'{' => 1,
                            b'}' => -1,
                            _ => 0,
                        };
                        depth == 0
                    });
                    inline.push((open, close.unwrap_or(code.len()), name));
                }
                _ => {}
            }
        }
        let line = |code: &str, at: usize| code[..at].matches('\n').count() + 1;
        for at in starts(&code, "use ") {
            let end = at + code[at..].find(';').unwrap();
            let tree = code[at + 4..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace(" as ", "#")
                .replace(' ', "");
            paths.extend(
                leaves(&tree).into_iter().map(|l| (l.split('#').next().unwrap().to_string(), at, line(&code, at))),
            );
            code.replace_range(at..end, &" ".repeat(end - at)); // not read again as inline paths
        }
        let mut at = 0;
        while at < code.len() {
            let run = &code.as_bytes()[at..];
            let len = run.iter().take_while(|&&b| word(b) || b == b':').count().max(1);
            if run[..len].windows(2).any(|w| w == b"::") && (at == 0 || code.as_bytes()[at - 1] != b'.') {
                paths.push((
                    String::from_utf8_lossy(&run[..len]).trim_end_matches(':').to_string(),
                    at,
                    line(&code, at),
                ));
            }
            at += len;
        }
        for (path, at, ln) in paths {
            let segs: Vec<String> = path.split("::").map(String::from).collect();
            let cur: Vec<String> = file_mod
                .iter()
                .cloned()
                .chain(inline.iter().filter(|m| m.0 < at && at < m.1).map(|m| m.2.clone()))
                .collect();
            let ups = segs.iter().take_while(|s| *s == "super").count();
            let abs: Vec<String> = match segs[0].as_str() {
                "crate" => segs[1..].to_vec(),
                "self" => [&cur[..], &segs[1..]].concat(),
                "super" => [&cur[..cur.len().saturating_sub(ups)], &segs[ups..]].concat(),
                c if children.contains(c) => [&file_mod[..], &segs[..]].concat(),
                _ => continue,
            };
            if let (Some(from), Some(to)) = (node(&file_mod), node(&abs))
                && from != to
            {
                edges.entry((from, to)).or_insert_with(|| format!("{}:{ln} {path}", f.display()));
            }
        }
    }
    edges
}

/// Fails listing every edge that lies on a cycle (its target reaches back to its source).
fn assert_acyclic(root: &Path, prefix: &[&str], skip: &str) {
    let edges = edges(root, prefix, skip);
    let mut reach: BTreeSet<(String, String)> = edges.keys().cloned().collect();
    loop {
        let more: Vec<_> = (reach.iter())
            .flat_map(|(a, b)| reach.iter().filter(move |(c, _)| c == b).map(move |(_, d)| (a.clone(), d.clone())))
            .filter(|p| !reach.contains(p))
            .collect();
        if more.is_empty() {
            break;
        }
        reach.extend(more);
    }
    let on_cycle: Vec<String> = (edges.iter())
        .filter(|((a, b), _)| reach.contains(&(b.clone(), a.clone())))
        .map(|((a, b), at)| format!("  {a} -> {b}: {at}"))
        .collect();
    assert!(
        on_cycle.is_empty(),
        "module cycles under {}:\n{}",
        root.join(prefix.join("/")).display(),
        on_cycle.join("\n")
    );
}

#[test]
fn the_controller_has_no_module_cycles() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &["controller"], "-");
}

#[test]
fn the_devcluster_has_no_module_cycles() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/devcluster"), &[], "tests");
}
