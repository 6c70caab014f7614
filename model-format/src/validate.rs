//! Every check that makes a parsed model safe to run. Each loop is bounded by array lengths
//! already checked against the shapes, so validation terminates on any input.

use crate::{
    Activation, ConvShape, DataShape, Dense, Error, Latent, Layer, Mixture, Model, NetworkId,
    OutputType, Prior, WeightLayout, MAX_LATENT, MAX_TRANSPOSED_STRIDE, MAX_WIDTH,
};

/// Largest absolute int8 input value: inputs lie in [-128, 127].
const MAX_ABS_INPUT: i64 = 128;

fn range(ok: bool, field: &'static str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::ValueOutOfRange { field })
    }
}

fn section(ok: bool, field: &'static str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::SectionMismatch { field })
    }
}

pub(crate) fn model(m: &Model<'_>) -> Result<(), Error> {
    // In 64 bits: a shape whose product wraps in 32 must fail on every target.
    let pixels = m.data.len_u64();
    range(pixels > 0 && pixels <= u64::from(MAX_WIDTH), "data shape")?;
    let pixels = pixels as usize;
    range(m.latent.dim > 0 && m.latent.dim <= MAX_LATENT, "latent.dim")?;
    latent(&m.latent)?;

    // A decoder-only model (format version 3) has no encoder layer at all.
    if m.has_encoder() {
        network(
            &m.encoder.layers,
            NetworkId::Encoder,
            (pixels, Some(&m.data)),
            (m.encoder_out_dim(), None),
            OutputType::I16,
        )?;
    }
    network(
        &m.decoder.layers,
        NetworkId::Decoder,
        (usize::from(m.latent.dim), None),
        (pixels, Some(&m.data)),
        OutputType::I8,
    )?;
    // The decoder's last layer turns logits into pixels through the table.
    let last = m.decoder.layers.last().ok_or(Error::ShapeMismatch {
        network: NetworkId::Decoder,
        layer: 255,
        field: "no layers",
    })?;
    range(
        last.activation() == Activation::PixelTable,
        "decoder output activation",
    )?;
    range(m.pixel_table.len() == 256, "pixel_table length")?;
    // The decoder's input zero-point is the latent code's.
    if let Some(first) = m.decoder.layers.first() {
        range(
            first.matrix().input_zero_point == m.latent.zero_point,
            "decoder input zero-point",
        )?;
    }

    prior(&m.prior, m.latent.dim)?;
    if let Some(g) = &m.golden {
        section(
            m.has_encoder() || g.encoder.is_empty(),
            "golden encoder vectors without an encoder",
        )?;
        for v in &g.encoder {
            section(v.input.len() == pixels, "golden encoder input")?;
            section(
                v.expected.len() == m.encoder_out_dim(),
                "golden encoder output",
            )?;
        }
        for v in &g.decoder {
            section(
                v.code.len() == usize::from(m.latent.dim),
                "golden decoder code",
            )?;
            section(v.expected.len() == pixels, "golden decoder output")?;
        }
        for v in &g.sampler {
            section(
                v.prior_code.len() == usize::from(m.latent.dim),
                "golden sampler code",
            )?;
            section(v.prior_pixels.len() == pixels, "golden sampler pixels")?;
        }
    }
    Ok(())
}

fn latent(l: &Latent<'_>) -> Result<(), Error> {
    range(l.frac_bits <= 14, "latent.frac_bits")?;
    multiplier(l.to_code_multiplier, "latent.to_code_multiplier")?;
    shift(l.to_code_shift, "latent.to_code_shift")?;
    let s = &l.sigma;
    range(s.step_log2 <= 14, "latent.sigma.step_log2")?;
    range(
        s.values.len() >= 2 && s.values.len() <= 4096,
        "latent.sigma.values length",
    )?;
    range(s.values.iter().all(|v| v <= 1 << 30), "latent.sigma.values")?;
    Ok(())
}

fn prior(p: &Prior<'_>, dim: u16) -> Result<(), Error> {
    match p {
        Prior::StandardNormal => Ok(()),
        Prior::Mixture(m) => mixture(m, dim),
        #[cfg(feature = "classes")]
        Prior::ClassMixture(c) => {
            mixture(&c.mixture, dim)?;
            // At least one class, each with a component, the last ending at K.
            section(!c.class_ends.is_empty(), "prior.class_ends")?;
            let mut prev = 0u16;
            for e in c.class_ends.iter() {
                section(e > prev, "prior.class_ends")?;
                prev = e;
            }
            section(prev == c.mixture.components, "prior.class_ends")
        }
        #[cfg(feature = "second-stage")]
        Prior::SecondStage(s) => second_stage(s, dim),
    }
}

/// A second stage's network: dense layers of at most [`crate::MAX_SECOND_STAGE_WIDTH`]
/// values from its draws to the latent's `dim` values in `I16`, `I8` between them, none
/// through the pixel table; its input conversion in range.
#[cfg(feature = "second-stage")]
fn second_stage(s: &crate::SecondStage<'_>, dim: u16) -> Result<(), Error> {
    multiplier(s.input_multiplier, "prior.input_multiplier")?;
    shift(s.input_shift, "prior.input_shift")?;
    let wide = u64::from(crate::MAX_SECOND_STAGE_WIDTH);
    for l in s.layers.iter() {
        range(matches!(l, Layer::Dense(_)), "prior layer kind")?;
        range(
            l.in_len() <= wide && l.out_len() <= wide,
            "prior layer width",
        )?;
        range(
            l.activation() != Activation::PixelTable,
            "prior layer activation",
        )?;
    }
    if let Some(first) = s.layers.first() {
        range(
            first.matrix().input_zero_point == s.input_zero_point,
            "prior input zero-point",
        )?;
    }
    network(
        &s.layers,
        NetworkId::Prior,
        (s.draws(), None),
        (usize::from(dim), None),
        OutputType::I16,
    )
}

fn mixture(m: &Mixture<'_>, dim: u16) -> Result<(), Error> {
    let k = usize::from(m.components);
    section(k > 0, "prior.components")?;
    section(m.cumulative.len() == k, "prior.cumulative")?;
    let n = k * usize::from(dim);
    section(m.means.len() == n, "prior.means")?;
    section(m.sigmas.len() == n, "prior.sigmas")?;
    let mut prev = 0u32;
    for c in m.cumulative.iter() {
        section(c >= prev, "prior.cumulative order")?;
        prev = c;
    }
    range(m.sigmas.iter().all(|v| v <= 1 << 30), "prior.sigmas")
}

fn multiplier(m: i32, field: &'static str) -> Result<(), Error> {
    range(m == 0 || m >= 1 << 30, field)
}

fn shift(s: i8, field: &'static str) -> Result<(), Error> {
    range((-31..=30).contains(&s), field)
}

/// Checks a network's layers and how they chain: `input` and `output` are the values it
/// reads and writes, with the data's shape where that side is the data (a convolution there
/// must take or write exactly that shape).
fn network(
    layers: &[Layer<'_>],
    id: NetworkId,
    (input, input_shape): (usize, Option<&DataShape>),
    (output, output_shape): (usize, Option<&DataShape>),
    last_type: OutputType,
) -> Result<(), Error> {
    let mismatch = |layer: usize, field| Error::ShapeMismatch {
        network: id,
        layer: layer as u8,
        field,
    };
    if layers.is_empty() {
        return Err(mismatch(255, "no layers"));
    }
    let mut width = input as u64;
    // The shape the previous layer wrote, when it was a convolution or the data.
    let mut shape = input_shape.map(|d| {
        (
            u64::from(d.height),
            u64::from(d.width),
            u64::from(d.channels),
        )
    });
    let count = layers.len();
    for (i, l) in layers.iter().enumerate() {
        if l.in_len() != width {
            return Err(mismatch(i, "in_dim does not match the previous output"));
        }
        let widths = 1..=u64::from(MAX_WIDTH);
        if !widths.contains(&l.in_len()) || !widths.contains(&l.out_len()) {
            return Err(mismatch(i, "out_dim"));
        }
        let is_last = i + 1 == count;
        let want_type = if is_last { last_type } else { OutputType::I8 };
        if l.output_type() != want_type {
            return Err(mismatch(i, "output_type"));
        }
        if let Some(c) = l.conv() {
            let input = (
                u64::from(c.in_height),
                u64::from(c.in_width),
                u64::from(c.in_channels),
            );
            if shape.is_some_and(|s| s != input) {
                return Err(mismatch(i, "conv input shape"));
            }
            conv(c, matches!(l, Layer::ConvTranspose2d(_)), l.matrix())
                .map_err(|field| mismatch(i, field))?;
        }
        match l {
            Layer::ConvTranspose2d(c) => phases(c, id, i)?,
            _ => dense(l.matrix(), id, i)?,
        }
        width = l.out_len();
        shape = l.conv().map(|c| {
            (
                u64::from(c.out_height),
                u64::from(c.out_width),
                u64::from(c.out_channels),
            )
        });
    }
    if width != output as u64 {
        return Err(mismatch(
            count - 1,
            "out_dim does not match the network's output",
        ));
    }
    if let (Some(d), Some(c)) = (output_shape, layers.last().and_then(Layer::conv)) {
        let data = (d.height, d.width, u16::from(d.channels));
        if (c.out_height, c.out_width, c.out_channels) != data {
            return Err(mismatch(count - 1, "conv output shape"));
        }
    }
    Ok(())
}

/// A transposed convolution's arrays: the phases' matrices one after the other (lead bytes
/// once, zero), `stride^2` biases per output channel; then each phase as a dense layer.
fn phases(c: &crate::Conv<'_>, id: NetworkId, index: usize) -> Result<(), Error> {
    let mismatch = |field| Error::ShapeMismatch {
        network: id,
        layer: index as u8,
        field,
    };
    let m = &c.matrix;
    let r = usize::from(m.out_dim);
    let total = c.packed_len().ok_or(mismatch("weights length"))?;
    let lead = match m.layout {
        WeightLayout::RowMajor => 0,
        WeightLayout::Tiles4x4 => 3,
    };
    let have = m.weights.len();
    if !(total..=total + lead).contains(&have) {
        return Err(mismatch("weights length"));
    }
    // `get` and iterators rather than indexing, here and below: no panic path (whose message
    // formatting would cost the firmware a kilobyte).
    range(
        m.weights
            .as_i8_slice()
            .get(..have - total)
            .is_some_and(|lead| lead.iter().all(|&b| b == 0)),
        "tiled weights lead bytes",
    )?;
    let phases = usize::from(c.shape.stride) * usize::from(c.shape.stride);
    if Some(m.bias.len()) != phases.checked_mul(r) {
        return Err(mismatch("bias length"));
    }
    // Finding a phase walks the phases before it: stride^4 steps for all, which
    // MAX_TRANSPOSED_STRIDE bounds (4,096).
    for ry in 0..c.shape.stride {
        for rx in 0..c.shape.stride {
            let p = c.phase(ry, rx).ok_or(mismatch("weights length"))?;
            dense(&p, id, index)?;
        }
    }
    Ok(())
}

/// A convolution's geometry: the shapes agree with kernel, stride and padding, and its
/// matrix is `out_channels` rows of one patch.
fn conv(c: &ConvShape, transposed: bool, m: &Dense<'_>) -> Result<(), &'static str> {
    if c.kernel == 0 || c.stride == 0 || c.padding >= c.kernel {
        return Err("conv geometry");
    }
    // Every phase of a transposed convolution has taps, and its phases are few enough that
    // validating and decoding them is bounded (MAX_TRANSPOSED_STRIDE).
    if transposed && (c.stride > c.kernel || c.stride > MAX_TRANSPOSED_STRIDE) {
        return Err("conv geometry");
    }
    if m.output_type != OutputType::I8 {
        return Err("conv output_type");
    }
    // K and R within the widths a dense layer may have (a patch may be wider than the
    // input it reads: 255 x 255 taps over 1 x 1).
    if u64::from(m.in_dim) != c.patch_len()
        || m.out_dim != c.out_channels
        || m.in_dim > MAX_WIDTH
        || m.out_dim > MAX_WIDTH
    {
        return Err("conv matrix shape");
    }
    // The convolution (for a transposed one, the one it transposes) from `big` to `small`.
    let (big, small) = if transposed {
        ((c.out_height, c.out_width), (c.in_height, c.in_width))
    } else {
        ((c.in_height, c.in_width), (c.out_height, c.out_width))
    };
    if c.conv_out(big.0) != Some(small.0) || c.conv_out(big.1) != Some(small.1) {
        return Err("conv shape");
    }
    Ok(())
}

fn dense(l: &Dense<'_>, id: NetworkId, index: usize) -> Result<(), Error> {
    let mismatch = |field| Error::ShapeMismatch {
        network: id,
        layer: index as u8,
        field,
    };
    let (inp, out) = (usize::from(l.in_dim), usize::from(l.out_dim));
    let packed = l.layout.packed_len(inp, out);
    let lead = match l.layout {
        WeightLayout::RowMajor => 0,
        WeightLayout::Tiles4x4 => 3,
    };
    if !(packed..=packed + lead).contains(&l.weights.len()) {
        return Err(mismatch("weights length"));
    }
    if l.bias.len() != out {
        return Err(mismatch("bias length"));
    }
    if l.multiplier.len() != out {
        return Err(mismatch("multiplier length"));
    }
    if l.shift.len() != out {
        return Err(mismatch("shift length"));
    }
    if !(l.weight_scale.is_empty() || l.weight_scale.len() == out) {
        return Err(mismatch("weight_scale length"));
    }
    for m in l.multiplier.iter() {
        multiplier(m, "layer multiplier")?;
    }
    for s in l.shift.iter() {
        shift(s, "layer shift")?;
    }
    match (l.output_type, l.activation) {
        (OutputType::I16, Activation::None) => range(l.output_zero_point == 0, "i16 zero-point")?,
        (OutputType::I16, _) => range(false, "i16 output activation")?,
        (OutputType::I8, _) => {}
    }
    // Accumulator bound: |bias| + 128 * sum |w| must fit in an i32, row by row.
    let overflow = |row: usize| Error::AccumulatorOverflow {
        network: id,
        layer: index as u8,
        row: row as u16,
    };
    let fits = |row: usize, sum: i64| {
        let b = i64::from(l.bias.get(row).unwrap_or(0));
        b.abs() + MAX_ABS_INPUT * sum <= i64::from(i32::MAX)
    };
    // Where every bias leaves room for the worst case (every input and weight -128), every
    // row fits whatever its weights: one pass over the biases decides the layer, and no
    // weight is summed (the same verdict as summing them; boot validation is then mostly
    // the checksum). Otherwise every row's weights are summed.
    let worst = MAX_ABS_INPUT * MAX_ABS_INPUT * inp as i64;
    let all_fit = l
        .bias
        .iter()
        .all(|b| i64::from(b).abs() + worst <= i64::from(i32::MAX));
    match l.layout {
        WeightLayout::RowMajor if all_fit => {}
        WeightLayout::RowMajor => {
            let w = l.weights.as_i8_slice();
            for (row, ws) in w.chunks_exact(inp.max(1)).enumerate() {
                let sum: i64 = ws.iter().map(|&x| i64::from(x).abs()).sum();
                if !fits(row, sum) {
                    return Err(overflow(row));
                }
            }
        }
        WeightLayout::Tiles4x4 => {
            let all = l.weights.as_i8_slice();
            let (lead, tiles) = all.split_at(all.len() - packed);
            range(lead.iter().all(|&b| b == 0), "tiled weights lead bytes")?;
            // One block of 4 rows at a time: sums per row, padding must be zero. Sums fit an
            // i32: at most 65,536 columns of |w| <= 128 per row.
            let groups = inp.div_ceil(4);
            let pad_cols = 4 * groups - inp;
            let padding = Error::ValueOutOfRange {
                field: "tiled weights padding",
            };
            // The padding columns of a block's last tile hold zeros.
            let pad_columns_clear = |bytes: &[i8]| {
                let last = bytes.get(bytes.len().saturating_sub(16)..).unwrap_or(&[]);
                pad_cols == 0
                    || last
                        .chunks_exact(4)
                        .all(|w| w.iter().skip(4 - pad_cols).all(|&x| x == 0))
            };
            for (block, bytes) in tiles.chunks_exact((16 * groups).max(1)).enumerate() {
                let rows = out.saturating_sub(4 * block).min(4);
                // A whole block of a layer that fits the worst case: only its padding columns
                // need reading (a block with padding rows is always summed, to check them).
                if rows == 4 && all_fit {
                    if !pad_columns_clear(bytes) {
                        return Err(padding);
                    }
                    continue;
                }
                let mut sums = [0i32; 4];
                for tile in bytes.chunks_exact(16) {
                    for (sum, row) in sums.iter_mut().zip(tile.chunks_exact(4)) {
                        *sum += row.iter().map(|&x| i32::from(x).abs()).sum::<i32>();
                    }
                }
                // The padding columns of the last tile of each row...
                if !pad_columns_clear(bytes) {
                    return Err(padding);
                }
                // ...and the padding rows of the last block hold zeros only.
                if sums.iter().skip(rows).any(|&sum| sum != 0) {
                    return Err(padding);
                }
                for (r, &sum) in sums.iter().take(rows).enumerate() {
                    if !fits(4 * block + r, i64::from(sum)) {
                        return Err(overflow(4 * block + r));
                    }
                }
            }
        }
    }
    Ok(())
}
