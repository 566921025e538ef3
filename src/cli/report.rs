//! `bbed report`: figures, tables and index.html from sweep results (see [`crate::report`]),
//! with CAM panels computed from the zoo's real models when `--zoo` and `--data` are given.

use super::args::FolderArgs;
use std::path::PathBuf;

use clap::Args;

use crate::report::cam::choose_cam_image;
use crate::report::claims::{BootstrapConfig, DEFAULT_RESAMPLES};
use crate::report::{load_many, results_files, write_report, ReportInputs};
use crate::sweep::{cam::cam_row, load_zoo, SweepHeader};
use crate::{Error, Result};

const AFTER: &str = "\
CAM (Table 3): for one test image every zoo entry gets a clean panel and DeepFool panels after 1
and 5 iterations. Default image: the lowest test index that every zoo entry classifies correctly
according to the sweep records (else the one most entries get right, with a warning); the figure
caption says which. --cam-image chooses another.

Paper claims (tables/claims.*): each claim's effect with a paired bootstrap 95% CI over images
(--bootstrap resamples, --bootstrap-seed) and a verdict; the rules are printed with the tables.

Figures are written as SVG and as PNG at 300 dpi (needs a system font: DejaVu Sans, Debian
package fonts-dejavu-core, or Liberation Sans); tables as Markdown, CSV and LaTeX (booktabs).

Example:
  bbed report results/ --zoo zoo/ --data /usr/share/datasets/fashion-mnist --out report/";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct ReportArgs {
    /// Results files or folders of *.jsonl
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Output folder
    #[arg(long)]
    pub out: PathBuf,
    /// Zoo folder, for CAM panels (needs --data)
    #[arg(long)]
    pub zoo: Option<PathBuf>,
    /// Data set, for CAM panels (needs --zoo)
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Test-set index of the CAM image
    #[arg(long)]
    pub cam_image: Option<usize>,
    /// Classes (PGD breaking line 1/classes); default from the sweep header or data, else 10
    #[arg(long)]
    pub classes: Option<usize>,
    /// Replace the report files in a non-empty --out
    #[arg(long)]
    pub force: bool,
    /// Skip corrupt result lines with a warning instead of failing
    #[arg(long)]
    pub skip_corrupt: bool,
    /// Bootstrap resamples for the paper claims' confidence intervals
    #[arg(long, default_value_t = DEFAULT_RESAMPLES)]
    pub bootstrap: usize,
    /// Seed of the claims' bootstrap
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
}

pub fn run(a: ReportArgs) -> Result<String> {
    let header = match a.results.as_slice() {
        [one] if one.is_dir() => SweepHeader::load(one)?,
        _ => None,
    };
    let mut inputs = ReportInputs {
        force: a.force,
        bootstrap: BootstrapConfig {
            resamples: a.bootstrap,
            seed: a.bootstrap_seed,
        },
        settings_note: header.as_ref().map(SweepHeader::note),
        ..ReportInputs::default()
    };
    let records = load_many(&results_files(&a.results)?, a.skip_corrupt)?;
    let mut warnings = Vec::new();
    let mut classes = a.classes.or(header.as_ref().map(|h| h.classes));
    match (&a.zoo, &a.data) {
        (Some(zoo), Some(data)) => {
            let (_, test) = a.folder.load(data)?;
            classes = classes.or(Some(test.classes));
            let zoo = load_zoo(zoo, test.image_shape(), test.classes)?;
            let names: Vec<String> = zoo.iter().map(|l| l.entry.name.clone()).collect();
            let index = match a.cam_image {
                Some(i) => {
                    inputs.cam_note = Some(format!("Test image {i} (chosen with --cam-image)."));
                    i
                }
                None => {
                    let choice = choose_cam_image(&records, &names).ok_or_else(|| {
                        Error::input(
                            "--cam-image",
                            "the sweep records name no test image; choose one with --cam-image",
                        )
                    })?;
                    if !choice.all_correct() {
                        warnings.push(format!(
                            "CAM: no test image in the records is classified correctly by all {} \
                             zoo entries; image {} is by {} of them",
                            choice.entries, choice.index, choice.correct
                        ));
                    }
                    inputs.cam_note = Some(choice.describe());
                    choice.index
                }
            };
            if index >= test.len() {
                return Err(Error::input(
                    "--cam-image",
                    format!("index {index} but the test set has {} images", test.len()),
                ));
            }
            let x = test.to_unit(index..index + 1)?;
            let label = test.labels[index] as usize;
            let seed = header.as_ref().map_or(0, |h| h.seed);
            for l in &zoo {
                inputs
                    .cam_rows
                    .push(cam_row(l, x.index_axis(ndarray::Axis(0), 0), label, seed)?);
            }
        }
        (None, None) => {}
        _ => {
            return Err(Error::input(
                "--zoo/--data",
                "CAM panels need both --zoo and --data (or neither)",
            ))
        }
    }
    inputs.classes = classes.unwrap_or(10);
    let s = write_report(&records, &inputs, &a.out)?;
    let mut out = format!(
        "report {}: {} records, {} cells, {} figures (SVG + PNG), {} table files\n",
        s.out_dir.display(),
        s.records,
        s.cells,
        s.figures.len(),
        s.tables.len()
    );
    for w in warnings.iter().chain(&s.warnings) {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push_str(&format!(
        "open {}\n",
        s.out_dir.join("index.html").display()
    ));
    Ok(out)
}
