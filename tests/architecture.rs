//! Module boundaries the compiler cannot see: no module depends on another module's implementation,
//! and no module names another module's tables.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The module names, from the same table the composition root iterates.
fn modules() -> Vec<&'static str> {
    shop::modules::ALL.iter().map(|m| m.name).collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tables(module: &str) -> &'static [&'static str] {
    shop::modules::find(module).map_or(&[], |m| m.tables)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
            out.push(path);
        }
    }
}

#[test]
fn modules_depend_on_each_other_only_through_their_contracts() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let module_crates: Vec<String> = modules().iter().map(|m| format!("shop-{m}")).collect();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    assert!(
        packages.len() >= modules().len() + 2,
        "expected the workspace packages"
    );
    for module in &module_crates {
        assert!(
            packages.iter().any(|p| p["name"] == module.as_str()),
            "the module table names {module}, which is no workspace crate"
        );
    }
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        if name == "shop" {
            continue;
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !module_crates.iter().any(|m| m == dep_name) {
                continue;
            }
            assert_ne!(
                name, "shop-kernel",
                "the kernel must not depend on a module ({dep_name})"
            );
            assert_eq!(
                dep["uses_default_features"], false,
                "{name} -> {dep_name}: default features must be off"
            );
            for feature in dep["features"].as_array().into_iter().flatten() {
                assert_eq!(
                    feature, "client",
                    "{name} -> {dep_name}: a module may use another only through its contract or client"
                );
            }
        }
    }
}

#[test]
fn modules_name_only_their_own_tables() {
    let all = modules();
    for module in all.iter().copied() {
        let mut sources = Vec::new();
        files(
            &root().join("modules").join(module).join("src"),
            &mut sources,
        );
        files(&root().join("migrations").join(module), &mut sources);
        assert!(!sources.is_empty(), "no sources for {module}");
        for other in all.iter().filter(|m| **m != module) {
            for table in tables(other) {
                for file in &sources {
                    let text = std::fs::read_to_string(file).unwrap_or_default();
                    assert!(
                        !text.contains(table),
                        "{} names {other}'s table {table}",
                        file.display()
                    );
                }
            }
        }
    }
}

#[test]
fn every_table_carries_its_modules_prefix_and_is_declared() {
    for module in modules() {
        let mut sql = Vec::new();
        files(&root().join("migrations").join(module), &mut sql);
        let mut created = Vec::new();
        let mut renamed_away = Vec::new();
        let name_after = |text: &str, i: usize| -> String {
            text[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        // The up migrations say what exists in the end; a table rebuilt under a temporary name and renamed
        // back (SQLite cannot alter a primary key) is not one of the module's tables.
        for file in sql.iter().filter(|f| f.ends_with("up.sql")) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for (i, _) in text.match_indices("CREATE TABLE ") {
                let name = name_after(&text, i + 13);
                assert!(
                    name.starts_with(&format!("{module}_")),
                    "{}: table {name}",
                    file.display()
                );
                created.push(name);
            }
            for (i, _) in text.match_indices("ALTER TABLE ") {
                let name = name_after(&text, i + 12);
                if text[i + 12 + name.len()..]
                    .trim_start()
                    .starts_with("RENAME TO")
                {
                    renamed_away.push(name);
                }
            }
        }
        created.retain(|t| !renamed_away.contains(t));
        created.sort();
        created.dedup();
        let mut declared = tables(module).to_vec();
        declared.sort();
        assert_eq!(
            created, declared,
            "{module}: TABLES must list exactly the tables its migrations create"
        );
    }
}

#[test]
fn a_contract_compiles_without_its_implementation() {
    // api.rs and error.rs may use only the contract's vocabulary, never diesel or actix.
    for module in modules() {
        for file in ["api.rs", "error.rs"] {
            let path = root().join("modules").join(module).join("src").join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines().filter(|l| l.trim_start().starts_with("use ")) {
                assert!(
                    !line.contains("diesel") && !line.contains("actix"),
                    "{}: {line}",
                    path.display()
                );
            }
        }
    }
}
