//! The layering rules of ../shared/DESIGN.md ("Layering rules the reshaping makes true"), checked on
//! the source: a layer names no module it must not depend on, in code, doc links or comments alike.

use std::path::{Path, PathBuf};

/// (layer, the modules it must not name).
const RULES: &[(&str, &[&str])] = &[
    ("media", &["transport", "call", "node"]),
    ("transport", &["call", "media"]),
    ("discovery", &["node", "call"]),
    ("call", &["discovery", "relay"]),
    ("crypto", &["call"]),
    ("group", &["transport", "media", "node", "discovery", "relay", "store", "control"]),
    ("store", &["node"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` a file names, as (line number, module), including inside `use crate::{…}`.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_group = false;
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                in_group = true;
                rest = group;
                break;
            }
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push((n + 1, name));
            rest = after;
        }
        if in_group {
            // Inside `use crate::{a::…, b, …}`: each top-level item names a module.
            for item in rest.split(',') {
                let name: String = item
                    .trim()
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((n + 1, name));
                }
            }
            if line.contains("};") {
                in_group = false;
            }
        }
    }
    out
}

#[test]
fn each_layer_names_only_what_the_design_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, module) in named_modules(&text) {
                if forbidden.contains(&module.as_str()) {
                    broken.push(format!("{}:{line}: {layer} names crate::{module}", file.display()));
                }
            }
            // `super::super::…` could climb out of the layer to a forbidden sibling.
            if let Some(n) = text.lines().position(|l| l.contains("super::super::")) {
                broken.push(format!("{}:{}: {layer} climbs out with super::super", file.display(), n + 1));
            }
        }
    }
    assert!(broken.is_empty(), "layering rules broken:\n{}", broken.join("\n"));
}

/// Where a line of Rust uses the `quinn` crate (a path or an import), not where prose mentions it.
fn names_quinn(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    ["quinn::", "quinn_proto::", "use quinn", "quinn::{"].iter().any(|p| code.contains(p))
}

#[test]
fn media_never_names_quic() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/media"), &mut files);
    let broken: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.lines()
                .enumerate()
                .filter(|(_, l)| names_quinn(l))
                .map(|(n, _)| format!("{}:{}", file.display(), n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(broken.is_empty(), "media names quinn (it has crate::media_link for that):\n{}", broken.join("\n"));
    assert!(names_quinn("    conn: quinn::Connection,") && names_quinn("use quinn::{Connection};"));
    assert!(!names_quinn("//! quinn-proto is the model; quinn:: in prose") && !names_quinn("let quinny = 1;"));
}

#[test]
fn the_checker_sees_plain_paths_and_use_groups() {
    let text = "use crate::call::CallId;\nuse crate::{\n    node::unix_ms,\n    media::x,\n};\nlet t = crate::relay::parse(x);";
    let names: Vec<String> = named_modules(text).into_iter().map(|(_, m)| m).collect();
    assert_eq!(names, ["call", "node", "media", "relay"]);
    let one_line = named_modules("use crate::{node, store::Db};");
    assert_eq!(one_line.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(), ["node", "store"]);
}
