//! `trainer inspect`.

use std::path::Path;

use anyhow::{Context, Result};
use tinyvae_format::Model;

pub(crate) fn cmd_inspect(
    path: &Path,
    (target, cpu): (Option<&str>, Option<&str>),
    c_header: Option<&Path>,
    check: bool,
) -> Result<()> {
    let blob = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let m = Model::from_bytes(&blob).with_context(|| format!("{}: not a model", path.display()))?;
    let p = &m.provenance;
    let f = m
        .footprint(&blob)
        .with_context(|| format!("{}: not a model", path.display()))?;
    println!(
        "{}: {} bytes, format version {}{}",
        path.display(),
        f.total,
        f.version,
        if m.has_encoder() {
            ""
        } else {
            ", decoder only (generates; cannot encode)"
        }
    );
    println!(
        "kind {:?}, data {}x{}x{} {:?}, latent {} (Q{} fixed point, int8 code scale {:.4})",
        m.kind,
        m.data.width,
        m.data.height,
        m.data.channels,
        m.data.pixel,
        m.latent.dim,
        m.latent.frac_bits,
        m.latent.scale
    );
    // The strings come from the file: escape control characters rather than send them to
    // the terminal.
    let clean = |t: &str| t.escape_debug().to_string();
    println!(
        "provenance: {} on {}, {} epochs, seed {}, beta {}, test -ELBO {:.3}, {}",
        clean(p.architecture),
        clean(p.dataset),
        p.epochs,
        p.seed,
        p.beta,
        p.test_neg_elbo,
        clean(p.trainer)
    );
    match &m.prior {
        tinyvae_format::Prior::StandardNormal => println!("prior: N(0, I)"),
        tinyvae_format::Prior::Mixture(mix) => {
            println!("prior: a mixture of {} diagonal Gaussians", mix.components)
        }
        tinyvae_format::Prior::ClassMixture(c) => println!(
            "prior: a mixture of {} diagonal Gaussians in {} classes (components per class: {})",
            c.mixture.components,
            c.classes(),
            (0..c.classes())
                .filter_map(|k| c.class_range(k).map(|r| r.len().to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        tinyvae_format::Prior::SecondStage(s) => println!(
            "prior: a second stage, {} N(0, 1) draws through {} dense layers to z",
            s.draws(),
            s.layers.len()
        ),
    }
    let prior: &[tinyvae_format::Layer<'_>] = m.prior.second_stage().map_or(&[], |s| &s.layers);
    let nets = [
        ("encoder", &m.encoder.layers[..]),
        ("decoder", &m.decoder.layers[..]),
        ("prior", prior),
    ];
    for (name, layers) in nets {
        for (i, layer) in layers.iter().enumerate() {
            let l = layer.matrix();
            println!(
                "  {name} {i}: {layer} {:?} {:?}, {:?} weights, zero-points in {} out {}",
                l.activation, l.output_type, l.layout, l.input_zero_point, l.output_zero_point
            );
        }
    }
    println!(
        "parameters: {} (int8 weights and int32 biases)",
        f.parameters
    );
    println!(
        "bytes: weights {}, per-channel {}, tables {}, golden vectors {}, other {}",
        f.weights, f.per_channel, f.tables, f.golden, f.other
    );
    // What the chip checks at boot, checked here by the same code.
    let engine = tinyvae_engine::Engine::new_unaligned(&m);
    let mut scratch = vec![0i8; engine.scratch_len()];
    let (mut stats, mut code, mut px) = (
        vec![0i16; m.encoder_out_dim()],
        vec![0i8; usize::from(m.latent.dim)],
        vec![0u8; m.data.len()],
    );
    let golden = engine.check_golden(&mut scratch, &mut stats, &mut code, &mut px);
    match &golden {
        Ok(Some(c)) => println!(
            "golden vectors: {} encoder, {} decoder, {} sampler, run on this host's engine: \
             bit-exact (the check the chip runs at boot)",
            c.encoder, c.decoder, c.sampler
        ),
        Ok(None) => println!("golden vectors: none (the chip skips its self-check)"),
        Err(e) => println!(
            "golden vectors: NOT reproduced by this engine ({e}): the chip rejects this model \
             at boot"
        ),
    }
    if check {
        golden.with_context(|| format!("{}: the chip would reject it at boot", path.display()))?;
    }
    let sizes = |dsp| tinyvae_engine::build::Sizes::of(&m, blob.len(), dsp);
    let outputs = 2 * m.encoder_out_dim() + m.data.len() + usize::from(m.latent.dim);
    println!(
        "needs: flash {} bytes (the blob, read in place, word-aligned), RAM: the scratch and \
         {outputs} bytes of outputs",
        blob.len()
    );
    match target {
        Some(t) => {
            let flags = cpu.map_or(String::new(), |c| format!("-Ctarget-cpu={c}"));
            let dsp = tinyvae_engine::dsp_rule::has_dsp_extension(t, &flags, "");
            let kernel = if dsp {
                "the DSP kernel"
            } else {
                "the portable kernels"
            };
            let on = format!(
                "{t}{}",
                cpu.map_or(String::new(), |c| format!(" (-C target-cpu={c})"))
            );
            println!("  scratch on {on}: {} bytes ({kernel})", sizes(dsp).scratch);
            if let Some(h) = c_header {
                let what = format!("{} on {on}", path.display());
                std::fs::write(h, sizes(dsp).to_c_header(&what))
                    .with_context(|| format!("writing {}", h.display()))?;
                println!("  wrote {}", h.display());
            }
        }
        None => println!(
            "  scratch: {} bytes with the DSP kernel (thumbv7em: Cortex-M4, M7; thumbv8m.main \
             with -C target-cpu=cortex-m33), {} without (thumbv6m, thumbv7m, the host); \
             --target names one",
            sizes(true).scratch,
            sizes(false).scratch
        ),
    }
    Ok(())
}
