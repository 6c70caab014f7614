//! No import circle between a crate's modules: each `crate::` and `super::` path in a
//! module's code (tests and comments left out) is an edge to the module it names, a module
//! and its own parents and children apart; a strongly connected set of two or more modules
//! is a circle. What any tool that reads `use` lines would find, kept at none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A module's path in its crate: `["conv", "dsp"]` for `src/conv/dsp.rs`.
type Module = Vec<String>;

/// The circles among `crate_dir`'s modules (each as its modules' paths), none when clean.
pub fn circles(crate_dir: &Path) -> Result<Vec<Vec<String>>> {
    let root = crate_dir.join("src");
    let mut files = Vec::new();
    walk(&root, &mut files)?;
    let mut sources = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        sources.insert(module_of(&root, f), text);
    }
    let modules: BTreeSet<Module> = sources.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &sources {
        for (ups, segs) in paths(code_of(text)) {
            // `crate::` from the root; `super::` (n times) from n levels up.
            let base: Module = m[..m.len().saturating_sub(ups.unwrap_or(m.len()))].to_vec();
            let target = (1..=segs.len()).rev().find_map(|k| {
                let t: Module = base
                    .iter()
                    .cloned()
                    .chain(segs[..k].iter().cloned())
                    .collect();
                modules.contains(&t).then_some(t)
            });
            let Some(t) = target else { continue };
            // A module and its own parents or children are one unit.
            if t.starts_with(m) || m.starts_with(&t) {
                continue;
            }
            edges.entry(m.clone()).or_default().insert(t);
        }
    }
    Ok(strongly_connected(&modules, &edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.iter().map(|m| m.join("::")).collect())
        .collect())
}

/// Fails naming every circle in `crates` (directories under the project root).
pub fn check(root: &Path, crates: &[&str]) -> Result<()> {
    let mut found = Vec::new();
    for c in crates {
        for circle in circles(&root.join(c))? {
            found.push(format!("{c}: {}", circle.join(" <-> ")));
        }
    }
    if !found.is_empty() {
        bail!("import circles between modules:\n  {}", found.join("\n  "));
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// A module's code without its `#[cfg(test)] mod tests` and its comments.
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` (`None`) and `super::super::a::b` (`Some(2)`) path, with its
/// segments after the root.
fn paths(code: String) -> Vec<(Option<usize>, Vec<String>)> {
    let mut out = Vec::new();
    for (start, root) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &code[start + root.len()..];
        let mut ups = (root == "super::").then_some(1);
        while let (Some(n), Some(r)) = (ups, rest.strip_prefix("super::")) {
            (ups, rest) = (Some(n + 1), r);
        }
        let segs: Vec<String> = rest
            .split("::")
            .map_while(|s| {
                let w: String = s
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!w.is_empty()).then_some(w)
            })
            .collect();
        out.push((ups, segs));
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected(
    nodes: &BTreeSet<Module>,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit(s: &mut State<'_>, v: &Module) {
        let i = s.index.len();
        s.index.insert(v.clone(), i);
        s.low.insert(v.clone(), i);
        s.stack.push(v.clone());
        s.on.insert(v.clone());
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in nodes {
        if !s.index.contains_key(n) {
            visit(&mut s, n);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A circle through `use crate::` lines is found; parents and children, tests and
    /// comments are not edges.
    #[test]
    fn finds_a_circle_and_only_a_circle() {
        let dir = std::env::temp_dir().join(format!("tinyvae-circles-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        let write = |p: &str, t: &str| std::fs::write(src.join(p), t).unwrap();
        write("lib.rs", "mod a;\nmod b;\nmod c;\n");
        write("a/mod.rs", "mod inner;\nuse crate::b::f;\n// crate::c::g\n");
        write("a/inner.rs", "use super::super::a::x;\n");
        write(
            "b.rs",
            "use crate::c::g;\n#[cfg(test)]\nmod tests { use crate::a::y; }\n",
        );
        write("c.rs", "pub fn g() {}\n");
        let clean = circles(&dir).unwrap();
        write("c.rs", "use crate::a::inner::z;\n");
        write("a/inner.rs", "use super::super::b::x;\n");
        let circle = circles(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(clean.is_empty(), "{clean:?}");
        assert_eq!(circle.len(), 1, "{circle:?}");
        let mut names = circle[0].clone();
        names.sort();
        assert_eq!(names, ["a::inner", "b", "c"].map(String::from).to_vec());
    }
}
