//! The house keeps its shape: every top-level module of `src/` sits in one layer of the list at
//! the top of ARCHITECTURE.md, and names (`crate::x`) only modules of its own layer or below.
//! Modules of one layer may use each other, but never in a circle. A module missing from the
//! list, a name pointing up, or a circle fails this test with the file and line to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first, read from the fenced `layers` block of ARCHITECTURE.md.
fn layers(root: &Path) -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc
        .find("```layers\n")
        .expect("ARCHITECTURE.md has a ```layers block (the layering list)")
        + "```layers\n".len();
    let end = start
        + doc[start..]
            .find("```")
            .expect("the layers block is closed");
    doc[start..end]
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Top-level modules of `src/` (files and folders, not `lib.rs`/`main.rs`).
fn top_modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .expect("src/")
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            if p.is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (stem != "lib" && stem != "main").then(|| stem.to_owned())
            }
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` part (tests may reach
/// anywhere), joined with newlines, with the file's line number of each joined line.
fn code_of(text: &str) -> (String, Vec<usize>) {
    let mut code = String::new();
    let mut numbers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            // A `//` after a quote may be inside a string (a URL): keep the line whole.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        code.push_str(line);
        code.push('\n');
        numbers.push(n + 1);
    }
    (code, numbers)
}

fn leading_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every top-level module the code names, with its line: `crate::x::...` paths and the first
/// level of `crate::{x, y::z}` groups.
fn named_modules(text: &str, tops: &BTreeSet<String>) -> Vec<(usize, String)> {
    let (code, numbers) = code_of(text);
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let line = numbers[code[..i].matches('\n').count()];
        let after = &code[i + "crate::".len()..];
        let mut names = Vec::new();
        if let Some(group) = after.strip_prefix('{') {
            let (mut depth, mut item) = (0usize, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(leading_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            names.push(leading_ident(&item));
        } else {
            names.push(leading_ident(after));
        }
        found.extend(
            names
                .into_iter()
                .filter(|n| tops.contains(n))
                .map(|n| (line, n)),
        );
    }
    found
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let layers = layers(root);
    let tops = top_modules(&src);
    // Layer index: 0 is the top.
    let mut layer_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for m in layer {
            assert!(
                layer_of.insert(m.clone(), i).is_none(),
                "module `{m}` is listed twice in ARCHITECTURE.md's layers"
            );
        }
    }
    let unlisted: Vec<_> = tops.iter().filter(|m| !layer_of.contains_key(*m)).collect();
    assert!(
        unlisted.is_empty(),
        "modules of src/ not in ARCHITECTURE.md's layers block: {unlisted:?}: add each to the layer it belongs to"
    );
    let stale: Vec<_> = layer_of.keys().filter(|m| !tops.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md's layers name modules src/ does not have: {stale:?}"
    );

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let first = first.as_os_str().to_str().expect("utf-8 path");
        let top = first.strip_suffix(".rs").unwrap_or(first).to_owned();
        let Some(&own) = layer_of.get(&top) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for (line, dep) in named_modules(&text, &tops) {
            if dep == top {
                continue;
            }
            edges.entry(top.clone()).or_default().insert(dep.clone());
            if layer_of[&dep] < own {
                upward.push(format!(
                    "src/{}:{line}: `{top}` (layer {}) names `{dep}` (layer {}, above it)",
                    rel.display(),
                    own + 1,
                    layer_of[&dep] + 1
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a layer above (layers counted from the top of ARCHITECTURE.md's list):\n{}\n\
         move the type both need down to the lower layer",
        upward.join("\n")
    );

    // Within a layer: no circle.
    fn reaches(
        edges: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(from).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) && reaches(edges, next, to, seen) {
                return true;
            }
        }
        false
    }
    let circles: Vec<_> = tops
        .iter()
        .filter(|m| reaches(&edges, m, m, &mut BTreeSet::new()))
        .collect();
    assert!(
        circles.is_empty(),
        "modules that import each other in a circle: {circles:?}"
    );
}
