//! Render the report's index.html in headless Chromium (Debian package `chromium`) and check that
//! every figure loads (`naturalWidth > 0`), every linked PNG figure loads as an image, and the
//! tables are present.
//!
//! Method: a copy of index.html next to it (same relative links) gets a small script that, after
//! the load event, writes its findings into the DOM; `--dump-dom` prints the DOM. Deliberately
//! broken control images (SVG and PNG) check that the probe can see failures at all.
//!
//! Without chromium the test prints a skip notice and passes, unless the environment variable
//! `CI` is set, where a missing browser is a failure. Set `REPORT_KEEP_DIR` to keep the rendered
//! report in that directory for a look.

use crate::report_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use breakingbed::report::{write_report, ReportInputs};
use report_support::*;

const PROBE: &str = r#"<img id="bbed-control" src="figures/__missing__.svg" alt="control">
<a id="bbed-control-png" href="figures/__missing__.png">control</a>
<script>
window.addEventListener('load', function () {
  var ok = 0, broken = [], control = 'unknown';
  document.querySelectorAll('img, object').forEach(function (el) {
    var loaded = el.tagName === 'IMG'
      ? (el.complete && el.naturalWidth > 0)
      : (el.contentDocument !== null);
    if (el.id === 'bbed-control') { control = loaded ? 'loaded' : 'broken'; return; }
    if (loaded) { ok += 1; } else { broken.push(el.getAttribute('src') || el.getAttribute('data')); }
  });
  // Every linked PNG (and the control) loaded as an image after the page.
  var pngs = [];
  document.querySelectorAll('a[href$=".png"]').forEach(function (a) {
    var h = a.getAttribute('href');
    if (pngs.indexOf(h) < 0) { pngs.push(h); }
  });
  Promise.all(pngs.map(function (src) {
    return new Promise(function (done) {
      var im = new Image();
      im.onload = function () { done(im.naturalWidth > 0 ? '' : src); };
      im.onerror = function () { done(src); };
      im.src = src;
    });
  })).then(function (bad) {
    var pngControl = bad[pngs.indexOf('figures/__missing__.png')] ? 'broken' : 'loaded';
    bad = bad.filter(function (b) { return b && b !== 'figures/__missing__.png'; });
    var out = document.createElement('pre');
    out.id = 'bbed-result';
    out.textContent = 'RESULT ok=' + ok + ' broken=' + broken.length + ' control=' + control +
      ' png_ok=' + (pngs.length - 1 - bad.length) + ' png_broken=' + bad.length +
      ' png_control=' + pngControl +
      ' tables=' + document.querySelectorAll('table').length + ' rows=' +
      document.querySelectorAll('table tbody tr').length + ' missing=[' + broken.concat(bad).join(' ') +
      '] END';
    document.body.appendChild(out);
  });
});
</script>
"#;

fn chromium_available() -> bool {
    Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run a command, killing it after `limit`; returns stdout.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

fn field(result: &str, key: &str) -> String {
    let p = result
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("{key} in {result}"));
    result[p + key.len() + 2..]
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn report_renders_in_headless_chromium() {
    if !chromium_available() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium not found but CI is set: install it (apt-get install -y chromium)");
        }
        eprintln!("SKIPPED report_renders_in_headless_chromium: chromium not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = std::env::var_os("REPORT_KEEP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("report"));
    let inputs = ReportInputs {
        cam_rows: synthetic_cams(),
        settings_note: Some("synthetic sweep for the browser test, seed 11".into()),
        force: true,
        ..ReportInputs::default()
    };
    let summary = write_report(&synthetic_sweep(11, 20), &inputs, &out).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let n_tables = html.matches("<table ").count();
    let n_rows = html.matches("<tr><td").count();
    let probe_page = out.join("probe.html");
    std::fs::write(
        &probe_page,
        html.replace("</body>", &format!("{PROBE}</body>")),
    )
    .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let dom = run_with_timeout(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", probe_page.display())),
        Duration::from_secs(180),
    );
    std::fs::remove_file(&probe_page).ok();
    let marker = "<pre id=\"bbed-result\">";
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("probe did not run; DOM:\n{dom}"));
    let start = start + marker.len();
    let result = &dom[start..dom[start..].find("END").unwrap() + start];
    eprintln!("{result}");
    assert_eq!(
        field(result, "control"),
        "broken",
        "the probe cannot see a broken image"
    );
    assert_eq!(field(result, "broken"), "0", "{result}");
    assert_eq!(
        field(result, "png_control"),
        "broken",
        "the probe cannot see a broken PNG"
    );
    assert_eq!(field(result, "png_broken"), "0", "{result}");
    assert_eq!(
        field(result, "png_ok"),
        summary.pngs.len().to_string(),
        "{result}"
    );
    assert_eq!(summary.pngs.len(), summary.figures.len());
    assert_eq!(
        field(result, "ok"),
        summary.figures.len().to_string(),
        "{result}"
    );
    assert_eq!(field(result, "tables"), n_tables.to_string());
    assert_eq!(field(result, "rows"), n_rows.to_string());
    assert!(
        n_tables >= 8 && n_rows > 50,
        "{n_tables} tables, {n_rows} rows"
    );
}
