//! Build-time code generation.
//!
//! 1. The Rust message types, from `proto/snakepit_bridge.proto`, with the
//!    pure-Rust parser of `protobuf-codegen`: no `protoc` is needed on PATH.
//!    The gRPC method descriptors are written by hand in
//!    `src/protocol/service.rs` (grpcio-compiler only reads protobuf 2
//!    descriptors). The messages are private to the crate; the bench's raw
//!    grpcio client compiles its own copy from `bridge_messages.rs`, the same
//!    code without its inner attributes, which `include!` does not accept.
//! 2. The table of the worker's Python files (`python/snakepit_bridge`,
//!    `python/snakepit_showcase`, `python/grpc_server.py`,
//!    `python/snakepit_bridge_pb2.py`), embedded in the
//!    crate so a program that depends on it needs no checkout of this
//!    repository. A content hash names the cache directory they are written
//!    to at run time, so two versions never share one.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=proto/snakepit_bridge.proto");
    protobuf_codegen::Codegen::new()
        .pure()
        .includes(["proto"])
        .input("proto/snakepit_bridge.proto")
        .cargo_out_dir("protos")
        .run_from_script();
    write_includable_messages();

    embed_python();
}

/// Writes `OUT_DIR/bridge_messages.rs`: the generated messages minus the
/// file-level `#![...]` attributes and `//!` docs, so that an example can
/// `include!` them inside a module of its own (which carries the `allow`s).
fn write_includable_messages() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let generated = fs::read_to_string(out.join("protos/snakepit_bridge.rs")).unwrap();
    let body: String = generated
        .lines()
        .filter(|line| !line.starts_with("#![") && !line.starts_with("//!"))
        .flat_map(|line| [line, "\n"])
        .collect();
    fs::write(out.join("bridge_messages.rs"), body).unwrap();
}

fn embed_python() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("python");
    let mut files = Vec::new();
    for dir in ["snakepit_bridge", "snakepit_showcase"] {
        collect_python(&root.join(dir), &mut files);
    }
    files.push(root.join("grpc_server.py"));
    // Top level, as Snakepit adapters import it (`import snakepit_bridge_pb2`).
    files.push(root.join("snakepit_bridge_pb2.py"));
    files.push(root.join("requirements.txt"));
    files.sort();

    // FNV-1a over names and contents: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table = String::from("&[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for b in rel.bytes().chain([0]).chain(bytes.iter().copied()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        writeln!(
            table,
            "    ({rel:?}, include_bytes!({:?}) as &[u8]),",
            file.display()
        )
        .unwrap();
    }
    table.push(']');
    println!("cargo:rerun-if-changed={}", root.display());

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::write(out.join("python_files.rs"), table).unwrap();
    fs::write(out.join("python_hash.txt"), format!("{hash:016x}")).unwrap();
}

fn collect_python(dir: &Path, files: &mut Vec<PathBuf>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                collect_python(&path, files);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            files.push(path);
        }
    }
}
