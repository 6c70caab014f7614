//! `trainer eval`: the test metrics, the model size, the sample scores.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tinyvae_trainer::classifier::{score, Classifier, SampleScore};
use tinyvae_trainer::data::Dataset;
use tinyvae_trainer::fidelity::{Fidelity, Reference};
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
        temperature,
        json,
    } = a;
    super::sample::check_temperature(temperature)?;
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
    let s = match scorer {
        Some((c, _)) => sample_scores(
            &net,
            &c,
            &data,
            int8.as_deref(),
            (score_samples, score_seed, temperature),
        )?,
        None => Scores::default(),
    };
    let part = |x: &Option<(SampleScore, Fidelity)>| x.as_ref().map(|x| x.0.clone());
    let fid = |x: &Option<(SampleScore, Fidelity)>| x.as_ref().map(|x| x.1.clone());
    if let Some(path) = json {
        let v = serde_json::json!({
            "model": net.arch.name(),
            "float_temperature": temperature,
            "metrics": m,
            "size": size,
            "score_float": part(&s.float),
            "score_int8": part(&s.int8),
            "score_float_on_int8_draws": part(&s.paired),
            "fidelity_float": fid(&s.float),
            "fidelity_int8": fid(&s.int8),
            "fidelity_float_on_int8_draws": fid(&s.paired),
            "fidelity_real_ceiling": s.ceiling,
            "score_reconstructions": part(&s.reconstructions),
            "score_int8_class": s.class.as_ref().map(|x| x.0.clone()),
            "fidelity_int8_class": s.class.as_ref().map(|x| x.1.clone()),
            "class_as_asked": s.class.as_ref().map(|x| x.2),
            "class_as_asked_per_class": s.class.as_ref().map(|x| x.3.clone()),
            "score_float_class": s.class_float.as_ref().map(|x| x.0.clone()),
            "fidelity_float_class": s.class_float.as_ref().map(|x| x.1.clone()),
            "class_as_asked_float": s.class_float.as_ref().map(|x| x.2),
            "class_as_asked_float_per_class": s.class_float.as_ref().map(|x| x.3.clone()),
            "fidelity_reconstructions": fid(&s.reconstructions),
        });
        atomic_write(&path, |mut f| {
            std::io::Write::write_all(&mut f, serde_json::to_string_pretty(&v)?.as_bytes())?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The scores of each set of samples: the classifier's labels, and the Fréchet distance and
/// nearest-training-image distance (`None` where the set was not made).
#[derive(Default)]
pub(crate) struct Scores {
    float: Option<(SampleScore, Fidelity)>,
    int8: Option<(SampleScore, Fidelity)>,
    paired: Option<(SampleScore, Fidelity)>,
    /// The same measures of real images (the ceiling).
    ceiling: Option<Fidelity>,
    /// The float model's reconstructions of test images: new digits in the model's own
    /// style, the baseline of the distance to the training set.
    reconstructions: Option<(SampleScore, Fidelity)>,
    /// For a prior grouped by class: the int8 engine's samples of each class asked for in
    /// turn, and the share the classifier gives the class asked for (all, then per class).
    class: Option<ClassScores>,
    /// The same of a conditional model's float samples.
    class_float: Option<ClassScores>,
}

/// Samples of each class asked for in turn: their scores, and the share the classifier
/// labels as the class asked for (all, then per class).
type ClassScores = (SampleScore, Fidelity, f64, Vec<f64>);

/// Scores a set of images and prints them under a name.
type Measure<'a> = dyn Fn(&str, &[Vec<u8>]) -> Result<(SampleScore, Fidelity)> + 'a;

/// The scores of `drawn` (`per_class` images of each class in turn, as `what`), and the
/// share the classifier labels as the class asked for.
fn class_scores(
    what: &str,
    measured: &Measure<'_>,
    c: &Classifier,
    per_class: usize,
    drawn: &[eval::ClassSample],
) -> Result<ClassScores> {
    let classes = drawn.len() / per_class;
    let images: Vec<Vec<u8>> = drawn.iter().map(|(_, px)| px.clone()).collect();
    let (s, f) = measured(what, &images)?;
    let probs = c.probabilities(&images)?;
    let mut hits = vec![0usize; classes];
    for ((class, _), p) in drawn.iter().zip(&probs) {
        let best = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(usize::MAX, |(i, _)| i);
        if best == *class {
            hits[*class] += 1;
        }
    }
    let per: Vec<f64> = hits.iter().map(|&h| h as f64 / per_class as f64).collect();
    let all = hits.iter().sum::<usize>() as f64 / drawn.len() as f64;
    println!(
        "  classified as the class asked for: {:.1}% ({} per class; per class: {})",
        100.0 * all,
        per_class,
        per.iter()
            .map(|v| format!("{:.0}%", 100.0 * v))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok((s, f, all, per))
}

/// The classifier's scores of the float model's samples from the prior and, with an int8
/// model file, of the int8 engine's samples and of the float decoder on the int8 engine's
/// own draws; each with its Fréchet distance to `data`'s test set and its distance to the
/// nearest training image, beside the same measures of as many real images.
pub(crate) fn sample_scores(
    net: &Net,
    c: &Classifier,
    data: &Dataset,
    int8: Option<&Path>,
    (score_samples, score_seed, temperature): (usize, u64, f32),
) -> Result<Scores> {
    let reference = Reference::new(c, data)?;
    let measured = |what: &str, images: &[Vec<u8>]| -> Result<(SampleScore, Fidelity)> {
        let s = score(c, images)?;
        print_score(what, &s);
        let f = reference.measure(c, images)?;
        print_fidelity(what, &f);
        Ok((s, f))
    };
    let mut out = Scores::default();
    let float = eval::float_prior_samples(net, score_samples, score_seed, temperature)?;
    out.float = Some(measured("float model", &float)?);
    if let Some((per_class, drawn)) =
        eval::float_class_samples(net, score_samples, score_seed, temperature)?
    {
        out.class_float = Some(class_scores(
            "float conditional model, each class asked for in turn",
            &measured,
            c,
            per_class,
            &drawn,
        )?);
    }
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
        out.int8 = Some(measured("int8 model", &imgs)?);
        // The float decoder on the int8 engine's own draws: the difference is
        // the decoder's quantization alone, not two sets of draws.
        let paired = eval::float_decode(net, &z)?;
        out.paired = Some(measured("float model on the int8 model's draws", &paired)?);
        if let Some((per_class, drawn)) =
            eval::int8_class_samples(&blob, score_samples, score_seed)?
        {
            out.class = Some(class_scores(
                "int8 model, each class asked for in turn",
                &measured,
                c,
                per_class,
                &drawn,
            )?);
        }
    }
    let seen = tinyvae_trainer::fidelity::seen_test_images(data, score_samples);
    let labels = (net.arch.classes > 0)
        .then(|| tinyvae_trainer::fidelity::seen_test_labels(data, score_samples))
        .flatten();
    let recon = eval::float_reconstructions(net, &seen, labels.as_deref())?;
    out.reconstructions = Some(measured(
        "float model's reconstructions of the real images",
        &recon,
    )?);
    let ceiling = reference.real_ceiling(c, data, score_samples)?;
    print_fidelity("real images (the ceiling)", &ceiling);
    out.ceiling = Some(ceiling);
    Ok(out)
}

fn print_fidelity(what: &str, f: &Fidelity) {
    let q = f.nearest_train_quantiles;
    println!(
        "  {what}, {} images: Fréchet distance to the test set's classifier features {:.2}; \
         nearest training image, mean RMS pixel difference {:.4} (10/25/50/75/90th \
         percentiles {:.3} {:.3} {:.3} {:.3} {:.3}); nearer a training image than any unseen \
         test image: {:.1}%; nearest training image in classifier features, distance \
         (10/50/90th percentiles) {:.2} {:.2} {:.2}",
        f.images,
        f.frechet,
        f.nearest_train_rms,
        q[0],
        q[1],
        q[2],
        q[3],
        q[4],
        100.0 * f.nearer_train_share,
        f.nearest_train_features_quantiles[0],
        f.nearest_train_features_quantiles[2],
        f.nearest_train_features_quantiles[4],
    );
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
        "sample score, {what}, {} images: {:.1}% labelled with p >= {}, label entropy {:.3} bits (histogram {:?})",
        s.images,
        100.0 * s.confident,
        tinyvae_trainer::classifier::CONFIDENT,
        s.label_entropy_bits,
        s.histogram
    );
}
