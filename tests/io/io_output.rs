//! The output rule ([`breakingbed::io::output`]) and the atomic writer: no silent overwrite,
//! never onto an input (however spelled), unusable folders refused up front, and a failed write
//! leaves the previous file intact with no temp file behind.

use breakingbed::io::atomic::write_atomic;
use breakingbed::io::output::{check_dir, check_file, same_file};
use std::path::Path;

#[test]
fn existing_outputs_need_force_and_inputs_are_never_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    std::fs::write(&input, b"data").unwrap();
    let out = dir.path().join("out.bin");
    let inputs = [("--weights", input.as_path())];
    // New file: fine; existing: refused unless forced.
    check_file("--out", &out, false, &inputs).unwrap();
    std::fs::write(&out, b"x").unwrap();
    let e = check_file("--out", &out, false, &inputs)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--out") && e.contains("already exists") && e.contains("--force"),
        "{e}"
    );
    check_file("--out", &out, true, &inputs).unwrap();
    // The input under several names: refused even with force.
    let hard = dir.path().join("hard.bin");
    std::fs::hard_link(&input, &hard).unwrap();
    let sym = dir.path().join("sym.bin");
    std::os::unix::fs::symlink(&input, &sym).unwrap();
    let dotted = dir.path().join("sub/../in.bin");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for alias in [&input, &hard, &sym, &dotted] {
        assert!(same_file(alias, &input), "{}", alias.display());
        let e = check_file("--out", alias, true, &inputs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("same file as --weights"), "{e}");
    }
    assert!(!same_file(&out, &input));
    assert_eq!(std::fs::read(&input).unwrap(), b"data");
}

#[test]
fn unusable_places_are_refused_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = check_file("--out", &file.join("w.bin"), false, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not writable"), "{e}");
    // A directory given where a file is expected.
    let e = check_file("--out", dir.path(), true, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a directory"), "{e}");
    // A missing folder is created (and left empty).
    let deep = dir.path().join("a/b/w.bin");
    check_file("--out", &deep, false, &[]).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("a/b")).unwrap().count(),
        0
    );
}

#[test]
fn output_folders_hold_nothing_else_unless_resumed_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zoo");
    let never = |_: &Path| false;
    check_dir("--out", &out, false, never, &[]).unwrap();
    std::fs::write(out.join("notes.txt"), b"keep").unwrap();
    let e = check_dir("--out", &out, false, never, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not empty"), "{e}");
    check_dir("--out", &out, true, never, &[]).unwrap();
    check_dir(
        "--out",
        &out,
        false,
        |d: &Path| d.join("notes.txt").exists(),
        &[],
    )
    .unwrap();
    // An input inside the output folder: refused even with force.
    let data = out.join("data");
    std::fs::create_dir(&data).unwrap();
    let e = check_dir("--out", &out, true, never, &[("--data", &data)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--data"), "{e}");
}

#[test]
fn a_failed_write_keeps_the_old_file_and_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("expected.hex");
    std::fs::write(&path, b"old complete file\n").unwrap();
    let e = write_atomic(&path, |w| {
        w.write_all(&[b'a'; 10_000])?;
        Err(std::io::Error::other("No space left on device"))
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("expected.hex") && e.contains("No space"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old complete file\n");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["expected.hex"]);
}
