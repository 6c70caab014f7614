//! `trainer eval`: the test metrics, the model size, the sample scores.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tinyvae_trainer::classifier::{score, Classifier, SampleScore};
use tinyvae_trainer::model::Net;
use tinyvae_trainer::train::Config;
use tinyvae_trainer::{atomic_write, eval};

use super::{load_run, sample::check_sample_count};
use crate::cli::EvalArgs;

/// The most importance samples per image `trainer eval` takes.
pub(crate) const MAX_IW_SAMPLES: usize = 1_000_000;

/// `trainer eval`: the test split's metrics, the model's size, and with a classifier the
/// scores of the float (and int8) model's samples from the prior.
pub(crate) fn cmd_eval(a: EvalArgs) -> Result<()> {
    let EvalArgs {
        checkpoint,
        data,
        iw_samples,
        iw_images,
        classifier,
        int8,
        score_samples,
        score_seed,
        json,
    } = a;
    let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
    // Counts that would not fit in memory are refused before anything is allocated.
    if classifier.is_some() {
        check_sample_count("--score-samples", score_samples, net.arch.pixels())?;
    }
    if iw_samples > MAX_IW_SAMPLES {
        bail!(
            "--iw-samples {iw_samples}: at most {MAX_IW_SAMPLES} (the bound settles long before: \
             the README's tables use 1000 and 5000)"
        );
    }
    // The classifier is checked before the evaluation, which can take minutes.
    let scorer = match &classifier {
        Some(path) => {
            let c = Classifier::load(path)?;
            let a = &net.arch;
            c.check_fit(path, (a.width, a.height, a.channels))?;
            Some((c, path))
        }
        None => None,
    };
    let iw = (iw_samples > 0).then_some((iw_samples, iw_images));
    let m = eval::evaluate(&net, &data.test, ck.config.recon, iw)?;
    print_metrics(&net, &ck.config, &m);
    let size = eval::ModelSize::of(&net.arch);
    println!(
        "parameters {} (decoder {}); int8 decoder about {} bytes; peak decoder activations {} bytes",
        size.parameters,
        size.decoder_parameters,
        size.decoder_int8_bytes,
        size.decoder_peak_activation_bytes
    );
    let (float_score, int8_score, paired_score) = match scorer {
        Some((c, _)) => sample_scores(&net, &c, int8.as_deref(), score_samples, score_seed)?,
        None => (None, None, None),
    };
    if let Some(path) = json {
        let v = serde_json::json!({
            "model": net.arch.name(),
            "metrics": m,
            "size": size,
            "score_float": float_score,
            "score_int8": int8_score,
            "score_float_on_int8_draws": paired_score,
        });
        atomic_write(&path, |mut f| {
            std::io::Write::write_all(&mut f, serde_json::to_string_pretty(&v)?.as_bytes())?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The classifier's scores of the float model's samples from the prior and, with an int8
/// model file, of the int8 engine's samples and of the float decoder on the int8 engine's
/// own draws.
pub(crate) fn sample_scores(
    net: &Net,
    c: &Classifier,
    int8: Option<&Path>,
    score_samples: usize,
    score_seed: u64,
) -> Result<(
    Option<SampleScore>,
    Option<SampleScore>,
    Option<SampleScore>,
)> {
    let (mut int8_score, mut paired_score) = (None, None);
    let float = eval::float_prior_samples(net, score_samples, score_seed)?;
    let s = score(c, &float)?;
    print_score("float model", &s);
    let float_score = Some(s);
    if let Some(model) = int8 {
        let blob =
            std::fs::read(model).with_context(|| format!("{}: cannot read", model.display()))?;
        let (imgs, z) = eval::int8_prior_draws(&blob, score_samples, score_seed)
            .with_context(|| format!("{}", model.display()))?;
        if z.len() != score_samples * net.arch.latent {
            bail!(
                "{}: its latent size differs from the checkpoint's ({})",
                model.display(),
                net.arch.latent
            );
        }
        let s = score(c, &imgs)?;
        print_score("int8 model", &s);
        int8_score = Some(s);
        // The float decoder on the int8 engine's own draws: the difference is
        // the decoder's quantization alone, not two sets of draws.
        let s = score(c, &eval::float_decode(net, &z)?)?;
        print_score("float model on the int8 model's draws", &s);
        paired_score = Some(s);
    }
    Ok((float_score, int8_score, paired_score))
}

pub(crate) fn print_metrics(net: &Net, cfg: &Config, m: &eval::Metrics) {
    println!(
        "model {} ({:?}), {} test images",
        net.arch.name(),
        net.arch.kind,
        m.images
    );
    println!(
        "test -ELBO {:.3} nats/example = recon {:.3} + KL {:.3}",
        m.neg_elbo, m.recon, m.kl
    );
    if cfg.beta != 1.0 {
        println!(
            "  (trained with beta {}: its objective is recon + beta KL = {:.3})",
            cfg.beta,
            m.recon + cfg.beta * m.kl
        );
    }
    if let Some((k, n, v)) = m.iw_bound {
        println!("importance-weighted bound, K = {k}, first {n} test images: {v:.3} nats");
    }
    println!("active units {}/{}", m.active_units, net.arch.latent);
    let kl: Vec<String> = m.kl_per_dim.iter().map(|v| format!("{v:.2}")).collect();
    println!("KL per dimension: {}", kl.join(" "));
    println!(
        "reconstruction at z = mu: MSE {:.5}, PSNR {:.2} dB",
        m.mse, m.psnr_db
    );
}

pub(crate) fn print_score(what: &str, s: &SampleScore) {
    println!(
        "sample score, {what}, {} prior samples: {:.1}% labelled with p >= {}, label entropy {:.3} bits (histogram {:?})",
        s.images,
        100.0 * s.confident,
        tinyvae_trainer::classifier::CONFIDENT,
        s.label_entropy_bits,
        s.histogram
    );
}
