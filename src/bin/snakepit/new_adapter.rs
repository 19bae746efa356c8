//! `snakepit new-adapter NAME`: an adapter, its test and a pool for it,
//! from the templates in `python/templates/`.
//!
//! The templates are real Python (ruff checks them with the rest of the
//! package) about a module `template_adapter` with a class
//! `TemplateAdapter`; both names are replaced by the user's.

use std::path::Path;

use crate::Failure;

/// The adapter module's placeholder name in the templates.
const MODULE_PLACEHOLDER: &str = "template_adapter";
/// The adapter class's placeholder name in the templates.
const CLASS_PLACEHOLDER: &str = "TemplateAdapter";

const ADAPTER_TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/python/templates/template_adapter.py"
));
const TEST_TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/python/templates/test_template_adapter.py"
));
const CONFIG_TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/python/templates/snakepit.toml"
));

const PYTHON_KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

/// `NAME` on the command line: a module name the user's `import` accepts.
pub(crate) fn parse_module_name(name: &str) -> Result<String, String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !PYTHON_KEYWORDS.contains(&name);
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} is not a usable module name: expected lowercase letters, digits and '_', \
             starting with a letter, and not a Python keyword"
        ))
    }
}

/// `text_tools` -> `TextToolsAdapter`.
fn class_name(module: &str) -> String {
    let words: String = module
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect::<String>()
        })
        .collect();
    format!("{words}Adapter")
}

/// A template with the placeholders replaced by the module and its class.
fn fill(template: &str, module: &str, class: &str) -> String {
    template
        .replace(CLASS_PLACEHOLDER, class)
        .replace(MODULE_PLACEHOLDER, module)
}

/// Writes `NAME.py`, `test_NAME.py` and (when there is none) `snakepit.toml`
/// into `dir`, then says how to test and call the new tool.
pub(crate) fn write(name: &str, dir: &Path) -> Result<(), Failure> {
    let class = class_name(name);
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let module_file = dir.join(format!("{name}.py"));
    let test_file = dir.join(format!("test_{name}.py"));
    for file in [&module_file, &test_file] {
        if file.exists() {
            return Err(Failure::Failed(format!(
                "{} exists; not overwriting it",
                file.display()
            )));
        }
    }
    create(&module_file, fill(ADAPTER_TEMPLATE, name, &class))?;
    create(&test_file, fill(TEST_TEMPLATE, name, &class))?;
    let config_file = dir.join("snakepit.toml");
    let pool_table = fill(CONFIG_TEMPLATE, name, &class);
    if config_file.exists() {
        println!(
            "{} exists: add this pool to it:\n\n{pool_table}",
            config_file.display()
        );
    } else {
        create(&config_file, pool_table)?;
    }
    let bridge = snakepit::doctor::worker_files_dir()
        .map_err(|e| Failure::Failed(format!("cannot write the worker's Python files: {e}")))?;
    println!("\nnext, in {}:", dir.display());
    println!("  test the tool in-process:");
    println!(
        "    PYTHONPATH={} python3 -m unittest test_{name}",
        bridge.display()
    );
    println!("  call it through a pool, and list the tools:");
    println!("    snakepit call greet '{{\"name\": \"Ada\"}}'");
    println!("    snakepit tools");
    Ok(())
}

fn create(path: &Path, text: String) -> Result<(), Failure> {
    std::fs::write(path, text)
        .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", path.display())))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_names_the_module_or_the_class_and_keeps_no_placeholder() {
        for template in [ADAPTER_TEMPLATE, TEST_TEMPLATE, CONFIG_TEMPLATE] {
            assert!(template.contains(MODULE_PLACEHOLDER));
            let filled = fill(template, "text_tools", "TextToolsAdapter");
            assert!(!filled.contains(MODULE_PLACEHOLDER), "{filled}");
            assert!(!filled.contains(CLASS_PLACEHOLDER), "{filled}");
        }
        let config = fill(CONFIG_TEMPLATE, "text_tools", "TextToolsAdapter");
        assert!(config.contains("[pools.text_tools]"));
        assert!(config.contains("adapter = \"text_tools.TextToolsAdapter\""));
    }

    #[test]
    fn the_class_is_the_module_in_camel_case() {
        assert_eq!(class_name("text_tools"), "TextToolsAdapter");
        assert_eq!(class_name("_x2__y"), "X2YAdapter");
    }

    #[test]
    fn a_module_name_must_be_importable() {
        assert!(parse_module_name("text_tools").is_ok());
        assert!(parse_module_name("_private2").is_ok());
        for bad in ["Not-A-Module", "2fast", "", "class", "a.b"] {
            assert!(parse_module_name(bad).is_err(), "{bad}");
        }
    }
}
