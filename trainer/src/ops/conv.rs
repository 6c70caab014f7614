//! Convolutions for training, fused: im2col + one matrix product (and col2im for the
//! transposed direction), channels-last (NHWC) activations and `(out, kh, kw, in)` weights,
//! the layouts the int8 engine reads. Each op has its own backward, itself made of the same
//! three kernels:
//!
//! - forward of a convolution: `y = im2col(x) W^T + b`;
//! - its input gradient: `dx = col2im(dy W)`, which is also the forward of a transposed
//!   convolution;
//! - its weight gradient: `dW = dy^T im2col(x)`.
//!
//! A transposed convolution is described by the convolution it mirrors (from its output back
//! to its input), so both share one [`ConvGeometry`].

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;
use super::gemm::{matmul, Mat};

/// The shape of a 2-D convolution from an `in_h x in_w x in_c` image to an
/// `out_h x out_w x out_c` one, with a square `kernel`, `stride` and zero `padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl ConvGeometry {
    /// Output height: `(in_h + 2 padding - kernel) / stride + 1`.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Values in one patch: `kernel^2 in_c`, the inner dimension of the product.
    pub fn patch(&self) -> usize {
        self.kernel * self.kernel * self.in_c
    }

    /// Values of one input image.
    pub fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.in_c
    }

    /// Values of one output image.
    pub fn out_len(&self) -> usize {
        self.out_h() * self.out_w() * self.out_c
    }

    /// Output positions of one image.
    pub fn positions(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// The checks that make every index below in range.
    fn check(&self) -> Result<()> {
        let ok = self.kernel > 0
            && self.stride > 0
            && self.in_c > 0
            && self.out_c > 0
            && self.padding < self.kernel
            && self.in_h + 2 * self.padding >= self.kernel
            && self.in_w + 2 * self.padding >= self.kernel;
        if ok {
            Ok(())
        } else {
            Err(Error::Msg(format!("invalid convolution geometry {self:?}")))
        }
    }

    /// The input row and column of kernel tap `t` at output position `o`, if inside.
    #[inline]
    fn tap(&self, o: usize, t: usize, size: usize) -> Option<usize> {
        (o * self.stride + t)
            .checked_sub(self.padding)
            .filter(|&v| v < size)
    }
}

impl ConvGeometry {
    /// For output column `ox`: the kernel columns `kx_lo..kx_hi` that fall inside the input,
    /// and the input column of `kx_lo`.
    #[inline]
    fn columns(&self, ox: usize) -> (usize, usize, usize) {
        let start = ox * self.stride;
        let lo = self.padding.saturating_sub(start).min(self.kernel);
        let hi = (self.in_w + self.padding)
            .saturating_sub(start)
            .clamp(lo, self.kernel);
        (lo, hi, (start + lo).saturating_sub(self.padding))
    }
}

thread_local! {
    /// A buffer reused for patches across calls: a fresh one each call costs page faults.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` on a scratch buffer of `len` values (contents unspecified), kept per thread.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    let mut buf = SCRATCH.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let out = f(&mut buf[..len]);
    SCRATCH.set(buf);
    out
}

/// Writes the patches of `n` images into `cols`: `(n out_h out_w) x patch`, each row the
/// kernel window of one output position in `(ky, kx, c)` order, zero where the window leaves
/// the image. Each run of kernel columns inside the image is one contiguous copy.
pub fn im2col(g: &ConvGeometry, x: &[f32], n: usize, cols: &mut [f32]) {
    let (patch, c, k) = (g.patch(), g.in_c, g.kernel);
    let rows = cols[..n * g.positions() * patch].chunks_exact_mut(patch);
    for (r, row) in rows.enumerate() {
        let (img, pos) = (r / g.positions(), r % g.positions());
        let (oy, ox) = (pos / g.out_w(), pos % g.out_w());
        let image = &x[img * g.in_len()..(img + 1) * g.in_len()];
        let (lo, hi, ix) = g.columns(ox);
        for (ky, dst) in row.chunks_exact_mut(k * c).enumerate() {
            match g.tap(oy, ky, g.in_h) {
                Some(iy) if hi > lo => {
                    dst[..lo * c].fill(0.0);
                    let src = (iy * g.in_w + ix) * c;
                    dst[lo * c..hi * c].copy_from_slice(&image[src..src + (hi - lo) * c]);
                    dst[hi * c..].fill(0.0);
                }
                _ => dst.fill(0.0),
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every patch value back to the input position it came
/// from, into `dx` (`n` input images, which the caller zeroes or pre-fills).
pub fn col2im(g: &ConvGeometry, cols: &[f32], n: usize, dx: &mut [f32]) {
    let (patch, c, k) = (g.patch(), g.in_c, g.kernel);
    for (r, row) in cols[..n * g.positions() * patch]
        .chunks_exact(patch)
        .enumerate()
    {
        let (img, pos) = (r / g.positions(), r % g.positions());
        let (oy, ox) = (pos / g.out_w(), pos % g.out_w());
        let image = &mut dx[img * g.in_len()..(img + 1) * g.in_len()];
        let (lo, hi, ix) = g.columns(ox);
        for (ky, src) in row.chunks_exact(k * c).enumerate() {
            let Some(iy) = g.tap(oy, ky, g.in_h).filter(|_| hi > lo) else {
                continue;
            };
            let at = (iy * g.in_w + ix) * c;
            for (d, v) in image[at..at + (hi - lo) * c]
                .iter_mut()
                .zip(&src[lo * c..hi * c])
            {
                *d += v;
            }
        }
    }
}

/// Patch values per block: 1 MiB of f32, so that a block's patches are still in cache when
/// the product reads them.
const BLOCK_VALUES: usize = 1 << 18;

impl ConvGeometry {
    /// Images per block of work: the blocks run in parallel, each on its own patches. A fixed
    /// size, so that results do not depend on the number of threads.
    fn block_images(&self) -> usize {
        (BLOCK_VALUES / (self.positions() * self.patch()).max(1)).max(1)
    }
}

/// `y = im2col(x) W^T (+ b)`: `n` images in, `n` images of `out_c` channels out.
pub fn conv_forward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    n: usize,
) -> Result<Vec<f32>> {
    g.check()?;
    let bi = g.block_images();
    let mut y = vec![0f32; n * g.out_len()];
    y.par_chunks_mut(bi * g.out_len())
        .zip(x.par_chunks(bi * g.in_len()))
        .try_for_each(|(y, x)| {
            let (nb, rows) = (x.len() / g.in_len(), y.len() / g.out_c);
            if let Some(b) = b {
                for row in y.chunks_exact_mut(g.out_c) {
                    row.copy_from_slice(&b[..g.out_c]);
                }
            }
            with_scratch(rows * g.patch(), |cols| {
                im2col(g, x, nb, cols);
                matmul(
                    y,
                    b.is_some(),
                    Mat::new(cols),
                    Mat::t(w),
                    (rows, g.patch(), g.out_c),
                )
            })
        })?;
    Ok(y)
}

/// `dx = col2im(dy W) (+ b per input channel)`: the input gradient of a convolution, and the
/// forward of the transposed convolution that mirrors it.
pub fn conv_backward_data(
    g: &ConvGeometry,
    dy: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    n: usize,
) -> Result<Vec<f32>> {
    g.check()?;
    let bi = g.block_images();
    let mut dx = vec![0f32; n * g.in_len()];
    if let Some(b) = b {
        for px in dx.chunks_exact_mut(g.in_c) {
            px.copy_from_slice(&b[..g.in_c]);
        }
    }
    dx.par_chunks_mut(bi * g.in_len())
        .zip(dy.par_chunks(bi * g.out_len()))
        .try_for_each(|(dx, dy)| {
            let (nb, rows) = (dx.len() / g.in_len(), dy.len() / g.out_c);
            with_scratch(rows * g.patch(), |cols| {
                matmul(
                    cols,
                    false,
                    Mat::new(dy),
                    Mat::new(w),
                    (rows, g.out_c, g.patch()),
                )?;
                col2im(g, cols, nb, dx);
                Ok::<(), Error>(())
            })
        })?;
    Ok(dx)
}

/// `dW = dy^T im2col(x)`, `(out_c, patch)`: the weight gradient of a convolution. Each block
/// of images gives a partial sum; the partial sums are added in block order.
pub fn conv_backward_weight(g: &ConvGeometry, x: &[f32], dy: &[f32], n: usize) -> Result<Vec<f32>> {
    g.check()?;
    let bi = g.block_images();
    let len = g.out_c * g.patch();
    let partials = x
        .par_chunks(bi * g.in_len())
        .zip(dy.par_chunks(bi * g.out_len()))
        .take(n.div_ceil(bi))
        .map(|(x, dy)| {
            let (nb, rows) = (x.len() / g.in_len(), dy.len() / g.out_c);
            let mut dw = vec![0f32; len];
            with_scratch(rows * g.patch(), |cols| {
                im2col(g, x, nb, cols);
                matmul(
                    &mut dw,
                    false,
                    Mat::t(dy),
                    Mat::new(cols),
                    (g.out_c, rows, g.patch()),
                )
            })?;
            Ok(dw)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut sum = vec![0f32; len];
    for p in &partials {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    Ok(sum)
}

/// Which side of the geometry a tensor sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The convolution's input (the transposed convolution's output).
    Input,
    /// The convolution's output (the transposed convolution's input).
    Output,
}

impl ConvGeometry {
    fn images(&self, l: &Layout, side: Side) -> Result<usize> {
        let (n, h, w, c) = l.shape().dims4()?;
        let want = match side {
            Side::Input => (self.in_h, self.in_w, self.in_c),
            Side::Output => (self.out_h(), self.out_w(), self.out_c),
        };
        if (h, w, c) != want {
            return Err(Error::Msg(format!(
                "convolution: a {h}x{w}x{c} tensor where {}x{}x{} was expected",
                want.0, want.1, want.2
            )));
        }
        Ok(n)
    }

    fn shape(&self, n: usize, side: Side) -> Shape {
        match side {
            Side::Input => Shape::from((n, self.in_h, self.in_w, self.in_c)),
            Side::Output => Shape::from((n, self.out_h(), self.out_w(), self.out_c)),
        }
    }

    fn weight_shape(&self) -> Shape {
        Shape::from((self.out_c, self.kernel, self.kernel, self.in_c))
    }
}

/// A convolution layer's forward, `(x, w, b) -> y`, with its backward: x `(n, in_h, in_w,
/// in_c)`, w `(out_c, k, k, in_c)`, b `(out_c)`, y `(n, out_h, out_w, out_c)`.
pub struct Conv2d(pub ConvGeometry);

/// A transposed convolution layer's forward, `(x, w, b) -> y`, with its backward: the
/// transpose of the convolution `self.0` (from y back to x): x `(n, out_h, out_w, out_c)`, w
/// `(out_c, k, k, in_c)`, b `(in_c)`, y `(n, in_h, in_w, in_c)`.
pub struct ConvTranspose2d(pub ConvGeometry);

/// The input gradient of a convolution, `(dy, w) -> dx`, without backward (used in
/// backward passes only).
struct BackwardData(ConvGeometry);

/// The weight gradient of a convolution, `(x, dy) -> dW`, without backward.
struct BackwardWeight(ConvGeometry);

/// The forward of a convolution without bias, `(x, w) -> y`, without backward (the input
/// gradient of a transposed convolution).
struct ForwardNoBias(ConvGeometry);

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "tinyvae-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let n = g.images(l1, Side::Input)?;
        check_weight(g, l2, l3, g.out_c)?;
        let (x, w, b) = (
            f32_slice(s1, l1, "conv input")?,
            f32_slice(s2, l2, "conv weight")?,
            f32_slice(s3, l3, "conv bias")?,
        );
        let y = conv_forward(g, x, w, Some(b), n)?;
        Ok((CpuStorage::F32(y), g.shape(n, Side::Output)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.0;
        let dy = dy.contiguous()?;
        // The first layer's input is data: no gradient to compute.
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(&w.contiguous()?, &BackwardData(g))?)
        } else {
            None
        };
        let dw = x.contiguous()?.apply_op2_no_bwd(&dy, &BackwardWeight(g))?;
        let db = super::relu::column_sums(&dy)?;
        Ok((dx, Some(dw), Some(db)))
    }
}

impl CustomOp3 for ConvTranspose2d {
    fn name(&self) -> &'static str {
        "tinyvae-conv-transpose2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let n = g.images(l1, Side::Output)?;
        check_weight(g, l2, l3, g.in_c)?;
        let (x, w, b) = (
            f32_slice(s1, l1, "transposed conv input")?,
            f32_slice(s2, l2, "transposed conv weight")?,
            f32_slice(s3, l3, "transposed conv bias")?,
        );
        let y = conv_backward_data(g, x, w, Some(b), n)?;
        Ok((CpuStorage::F32(y), g.shape(n, Side::Input)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.0;
        let dy = dy.contiguous()?;
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(&w.contiguous()?, &ForwardNoBias(g))?)
        } else {
            None
        };
        // The weight gradient of the mirrored convolution with the roles of x and y swapped.
        let dw = dy.apply_op2_no_bwd(&x.contiguous()?, &BackwardWeight(g))?;
        let db = super::relu::column_sums(&dy)?;
        Ok((dx, Some(dw), Some(db)))
    }
}

fn check_weight(g: &ConvGeometry, lw: &Layout, lb: &Layout, bias: usize) -> Result<()> {
    if lw.shape() != &g.weight_shape() || lb.shape().dims() != [bias] {
        return Err(Error::Msg(format!(
            "convolution: weight {:?} and bias {:?} where {:?} and ({bias}) were expected",
            lw.shape(),
            lb.shape(),
            g.weight_shape()
        )));
    }
    Ok(())
}

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "tinyvae-conv-backward-data"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let n = g.images(l1, Side::Output)?;
        let (dy, w) = (f32_slice(s1, l1, "dy")?, f32_slice(s2, l2, "weight")?);
        let dx = conv_backward_data(g, dy, w, None, n)?;
        Ok((CpuStorage::F32(dx), g.shape(n, Side::Input)))
    }
}

impl CustomOp2 for ForwardNoBias {
    fn name(&self) -> &'static str {
        "tinyvae-conv-forward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let n = g.images(l1, Side::Input)?;
        let (x, w) = (f32_slice(s1, l1, "x")?, f32_slice(s2, l2, "weight")?);
        let y = conv_forward(g, x, w, None, n)?;
        Ok((CpuStorage::F32(y), g.shape(n, Side::Output)))
    }
}

impl CustomOp2 for BackwardWeight {
    fn name(&self) -> &'static str {
        "tinyvae-conv-backward-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let n = g.images(l1, Side::Input)?;
        if g.images(l2, Side::Output)? != n {
            return Err(Error::Msg("convolution: batch sizes differ".into()));
        }
        let (x, dy) = (f32_slice(s1, l1, "x")?, f32_slice(s2, l2, "dy")?);
        let dw = conv_backward_weight(g, x, dy, n)?;
        Ok((CpuStorage::F32(dw), g.weight_shape()))
    }
}

/// A convolution layer: `x (n, h, w, c)` to `(n, oh, ow, out_c)`.
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, g: ConvGeometry) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Conv2d(g))
}

/// The transposed convolution mirroring `g`: `x (n, oh, ow, out_c)` to `(n, h, w, in_c)`.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, b: &Tensor, g: ConvGeometry) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, ConvTranspose2d(g))
}
