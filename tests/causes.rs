//! One vocabulary for outcomes: every cause code is written once in `src/` (in `outcome`), and
//! the README's table is the enum's.

use std::path::Path;

use pgdrill::outcome::Cause;

/// The README's table as the enum says it should read.
fn table() -> String {
    let mut out = String::from("| cause | verdict | meaning |\n|---|---|---|\n");
    for c in Cause::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.as_str(),
            c.verdict(),
            c.meaning()
        ));
    }
    out
}

#[test]
fn the_readme_table_is_the_enum() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("<!-- causes:start -->\n")
        .expect("causes:start marker")
        + 22;
    let end = readme
        .find("<!-- causes:end -->")
        .expect("causes:end marker");
    assert_eq!(
        &readme[start..end],
        table(),
        "README.md's cause table differs from outcome::Cause; it should read:\n{}",
        table()
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_cause_code_is_written_once_in_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .collect();
    let mut bad = Vec::new();
    for c in Cause::ALL {
        let literal = format!("\"{}\"", c.as_str());
        let places: Vec<&str> = texts
            .iter()
            .flat_map(|(f, t)| t.matches(&literal).map(move |_| f.as_str()))
            .collect();
        if places.len() != 1 {
            bad.push(format!(
                "{literal} appears {} times: {places:?}",
                places.len()
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
