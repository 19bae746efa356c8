//! The workers run code from the cache directory: one that another user
//! could have written to is never used.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Scope;

#[test]
fn a_cache_directory_others_can_write_to_is_not_used() {
    let scope = Scope::new("trust");
    let root = scope.path("cache");
    // The only test of this binary: no other thread reads the variable.
    std::env::set_var("SNAKEPIT_CACHE_DIR", &root);

    // Written and used while it is ours.
    let pool = scope.builder().workers(1).build().unwrap();
    common::assert_serves(&pool);
    pool.shutdown();

    // Opened to everyone, and code planted in it.
    let versioned: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("python-")
        })
        .collect();
    assert_eq!(versioned.len(), 1, "{versioned:?}");
    let planted = versioned[0].join("snakepit_bridge").join("__init__.py");
    std::fs::write(&planted, "raise SystemExit('planted code ran')\n").unwrap();
    for dir in [&root, &versioned[0]] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }

    let pool = scope
        .builder()
        .workers(1)
        .build()
        .expect("a private copy is used");
    common::assert_serves(&pool);
    scope.finish(&pool);

    let private = format!("snakepit-python-{}-", std::process::id());
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry
            .file_name()
            .to_str()
            .unwrap_or("")
            .starts_with(&private)
        {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}
