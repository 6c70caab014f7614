//! Runs are never lost or silently replaced: an existing run folder, a resume without a
//! checkpoint or with other data, a log after a kill, a diverged or corrupt checkpoint,
//! and half-written files.

mod common;

use candle_core::Device;
use tinyvae_trainer::data::{bundled_dir, Dataset};
use tinyvae_trainer::model::{Arch, Kind, Recon};
use tinyvae_trainer::train::{
    load_checkpoint, net_from_checkpoint, train, Config, Ended, RunOptions,
};

fn data(n: usize) -> Dataset {
    let mut d = Dataset::load(&bundled_dir()).unwrap();
    d.truncate(n, 100);
    d
}

fn config(n: usize) -> Config {
    Config {
        arch: Arch::dense(Kind::Vae, 28, 28, vec![32], 4),
        recon: Recon::Bce,
        beta: 1.0,
        warmup_epochs: 0,
        noise: None,
        lr: 1e-3,
        batch: 50,
        epochs: 2,
        seed: 1,
        dataset: "mnist-subset".into(),
        train_images: Some(n),
        data: None,
    }
}

fn tempdir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("runs-{name}"))
}

fn err(r: anyhow::Result<impl Sized>) -> String {
    format!("{:#}", r.err().expect("an error"))
}

#[test]
fn an_existing_run_is_neither_replaced_nor_resumed_by_accident() {
    let dir = tempdir("existing");
    let d = data(200);
    let run = dir.join("run");
    // Resuming where nothing was saved.
    let e = err(train(&config(200), &d, &run, true, &RunOptions::default()));
    assert!(e.contains("no checkpoint to resume"), "{e}");
    train(&config(200), &d, &run, false, &RunOptions::default()).unwrap();
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    // Training again into it: refused, nothing touched.
    let e = err(train(&config(200), &d, &run, false, &RunOptions::default()));
    assert!(e.contains("--resume") && e.contains("--overwrite"), "{e}");
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_to_string(run.join("log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // With --overwrite it starts over.
    let opts = RunOptions {
        overwrite: true,
        ..Default::default()
    };
    train(&config(200), &d, &run, false, &opts).unwrap();
}

#[test]
fn a_resume_with_other_data_is_refused_by_name() {
    let dir = tempdir("limit");
    let opts = RunOptions {
        stop_after_batches: Some(2),
        ..Default::default()
    };
    train(&config(200), &data(200), &dir, false, &opts).unwrap();
    // --train-limit 100 on resume: other data, other run.
    let e = err(train(
        &config(100),
        &data(100),
        &dir,
        true,
        &RunOptions::default(),
    ));
    assert!(e.contains("train_images"), "{e}");
    // The checkpoint left still loads.
    load_checkpoint(&dir, &Device::Cpu).unwrap();
}

#[test]
fn the_log_holds_each_epoch_once_after_a_kill() {
    let dir = tempdir("killed");
    let d = data(200);
    let opts = RunOptions {
        stop_after_batches: Some(4),
        ..Default::default()
    };
    assert_eq!(
        train(&config(200), &d, &dir, false, &opts).unwrap().1,
        Ended::Interrupted
    );
    // As if killed after logging epoch 2 but before its checkpoint: a line too many.
    let log = dir.join("log.jsonl");
    let line = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        format!("{line}{}", line.replace("\"epoch\":1", "\"epoch\":2")),
    )
    .unwrap();
    train(&config(200), &d, &dir, true, &RunOptions::default()).unwrap();
    let epochs: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, vec![1, 2]);
}

#[test]
fn a_checkpoint_with_a_non_finite_weight_is_refused_by_name() {
    let dir = tempdir("nan-weight");
    let (net, _) = train(
        &config(200),
        &data(200),
        &dir,
        false,
        &RunOptions::default(),
    )
    .unwrap();
    let mut ck = load_checkpoint(&dir, &Device::Cpu).unwrap();
    let w = net.named_vars()[2].1.as_tensor().clone(); // enc.1.w
    let mut v = tinyvae_trainer::model::to_vec_f32(&w).unwrap();
    v[7] = f32::NAN;
    ck.tensors.insert(
        "enc.1.w".into(),
        candle_core::Tensor::from_vec(v, w.dims(), &Device::Cpu).unwrap(),
    );
    let e = err(net_from_checkpoint(&ck, &Device::Cpu));
    assert!(e.contains("enc.1.w") && e.contains("index 7"), "{e}");
    // A tensor of the wrong shape (layers that do not chain) is named too.
    ck.tensors.insert(
        "enc.1.w".into(),
        candle_core::Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let e = err(net_from_checkpoint(&ck, &Device::Cpu));
    assert!(e.contains("enc.1.w is [3, 3]"), "{e}");
}

#[test]
fn a_corrupt_checkpoint_names_its_file() {
    let dir = tempdir("corrupt");
    train(
        &config(200),
        &data(200),
        &dir,
        false,
        &RunOptions::default(),
    )
    .unwrap();
    let path = dir.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    // Break the JSON of the run configuration inside the header.
    let key = b"\\\"recon\\\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("config in header");
    bytes[at + 2] = b'{';
    std::fs::write(&path, &bytes).unwrap();
    let e = err(load_checkpoint(&dir, &Device::Cpu));
    assert!(e.contains(&path.display().to_string()), "{e}");
}

#[test]
fn a_failed_write_leaves_no_temporary_file() {
    let dir = tempdir("atomic");
    let target = dir.join("model");
    let e = tinyvae_trainer::atomic_write(&target, |_| anyhow::bail!("disk full"));
    assert!(format!("{:#}", e.unwrap_err()).contains("disk full"));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    // A write into a folder that does not exist names the file.
    let e = tinyvae_trainer::atomic_write(&dir.join("no/such/x.tvae"), |_| Ok(()));
    assert!(format!("{:#}", e.unwrap_err()).contains("x.tvae"));
}

/// Every tensor of a run's checkpoint (weights and optimizer state), as bytes by name.
fn tensors(run: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let ck = load_checkpoint(run, &Device::Cpu).unwrap();
    let mut all: Vec<(String, Vec<f32>)> = ck
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn a_finished_run_trains_longer_as_one_run() {
    let dir = tempdir("longer");
    let d = data(200);
    let (short, long) = (dir.join("short"), dir.join("long"));
    let with_epochs = |n: usize| Config {
        epochs: n,
        ..config(200)
    };
    train(&with_epochs(2), &d, &short, false, &RunOptions::default()).unwrap();
    // Fewer epochs than it has run: refused, saying how many.
    let e = err(train(
        &with_epochs(1),
        &d,
        &short,
        true,
        &RunOptions::default(),
    ));
    assert!(e.contains("has trained 2 epochs already"), "{e}");
    // One more epoch on the finished run, against three from the start.
    train(&with_epochs(3), &d, &short, true, &RunOptions::default()).unwrap();
    train(&with_epochs(3), &d, &long, false, &RunOptions::default()).unwrap();
    assert!(tensors(&short) == tensors(&long), "the tensors differ");
    let log = |r: &std::path::Path| std::fs::read_to_string(r.join("log.jsonl")).unwrap();
    let (a, b) = (log(&short), log(&long));
    let strip = |t: &str| -> Vec<serde_json::Value> {
        t.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    let cfg = std::fs::read_to_string(short.join("config.json")).unwrap();
    assert!(cfg.contains("\"epochs\": 3"), "{cfg}");
}
