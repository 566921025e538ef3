//! `bbed sweep` then `bbed report` on a real (small) zoo through the binary: every figure file
//! exists, is valid SVG and is referenced from index.html, and the CAM grid is there. The CAM
//! inputs built from the models satisfy the CAM identity (Zhou et al.): the spatial mean of
//! `CAM_c` is `logit_c - bias_c`, because the features feed global average pooling and then the
//! linear layer.

use crate::report_support;
use crate::sweep_support;

use std::process::Command;

use breakingbed::attack::Model;
use breakingbed::sweep::cam::{cam_layers, cam_row};
use breakingbed::sweep::load_zoo;
use ndarray::{Axis, Ix1};
use sweep_support::*;

fn bbed(args: &[&std::ffi::OsStr]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bbed {:?}: {}",
        args,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn report_from_a_real_sweep_has_every_figure_as_linked_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = write_dataset(&tmp.path().join("data"), &dataset_labelled_by(&zoo, 1));
    let results = tmp.path().join("results");
    let report = tmp.path().join("report");
    let os = |s: &str| std::ffi::OsString::from(s);
    bbed(&[
        &os("sweep"),
        &os("--zoo"),
        zoo.as_os_str(),
        &os("--config"),
        grid.as_os_str(),
        &os("--data"),
        data.as_os_str(),
        &os("--out"),
        results.as_os_str(),
        &os("--images"),
        &os("3"),
        &os("--reruns"),
        &os("2"),
    ]);
    let out = bbed(&[
        &os("report"),
        results.as_os_str(),
        &os("--zoo"),
        zoo.as_os_str(),
        &os("--data"),
        data.as_os_str(),
        &os("--out"),
        report.as_os_str(),
    ]);
    assert!(out.contains("index.html"), "{out}");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let mut figures: Vec<String> = std::fs::read_dir(report.join("figures"))
        .unwrap()
        .map(|e| format!("figures/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    figures.sort();
    for fam in [
        "figures/fig2_pgd_",
        "figures/fig3_",
        "figures/fig4_box_",
        "figures/table3_cam",
    ] {
        assert!(
            figures.iter().any(|f| f.starts_with(fam)),
            "no {fam} in {figures:?}"
        );
    }
    for f in &figures {
        let svg = std::fs::read_to_string(report.join(f)).unwrap();
        assert_eq!(report_support::check_xml(&svg).unwrap(), "svg", "{f}");
        assert!(
            html.contains(&format!("src=\"{f}\"")),
            "{f} not in index.html"
        );
    }
    // The run header's description reaches the page.
    assert!(html.contains("seed 0"), "settings note missing");
    // Report never overwrites without --force.
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .arg("report")
        .arg(&results)
        .arg("--out")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn cam_inputs_satisfy_the_cam_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let data = dataset(3);
    for l in load_zoo(&zoo, [1, SIDE, SIDE], 10).unwrap() {
        let (feat, lin) = cam_layers(&l).unwrap();
        // resnet8: the last block's output (after its activation) feeds GAP, then `fc`.
        assert!(feat.starts_with("layer3"), "{feat}");
        let x = data.to_unit(5..6).unwrap();
        let row = cam_row(&l, x.index_axis(Axis(0), 0), data.labels[5] as usize, 1).unwrap();
        assert_eq!(row.panels.len(), 3);
        let logits = l.float().logits(&x);
        let bias = l.float().net.params[&format!("{lin}.bias")]
            .clone()
            .into_dimensionality::<Ix1>()
            .unwrap();
        let p = &row.panels[0];
        assert_eq!(p.label, "clean");
        assert_eq!(p.image, x.index_axis(Axis(0), 0));
        for c in 0..10 {
            let map =
                breakingbed::report::cam::cam(p.features.view(), p.weights.view(), c).unwrap();
            let mean = map.mean().unwrap();
            let want = logits[[0, c]] - bias[c];
            assert!(
                (mean - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{}: class {c}: mean CAM {mean} vs logit - bias {want}",
                l.entry.name
            );
        }
        // The drawn class is the prediction on each panel's own image.
        for p in &row.panels {
            let z = l.float().logits(&p.image.clone().insert_axis(Axis(0)));
            let pred = breakingbed::attack::classifier::argmax(z.row(0).as_slice().unwrap());
            assert_eq!(p.class, pred, "{}", p.label);
        }
    }
}
