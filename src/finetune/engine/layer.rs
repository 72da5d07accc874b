//! One BERT layer of the training engine: forward on the packed real tokens of a batch,
//! keeping what the backward pass needs, and the backward pass into the layer's 16 parameter
//! gradients (in [`PARTS`](super::super::model::PARTS) order).

use super::ops::{self, Attn, Lin, Products};
use crate::encode::kernels::{self, AttnScratch};
use rayon::prelude::*;

/// The encoder's shapes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Hidden width.
    pub(crate) h: usize,
    /// Attention heads.
    pub(crate) heads: usize,
    /// Feed-forward width.
    pub(crate) inter: usize,
    /// Layer-norm epsilon.
    pub(crate) eps: f32,
}

/// A layer's weights packed for the forward products (Q, K and V fused into one).
pub(super) struct Packed {
    qkv: Lin,
    out: Lin,
    ffn_in: Lin,
    ffn_out: Lin,
}

impl Packed {
    /// Packs the 16 parameters `p` of one layer for `products`.
    pub(super) fn new(p: &[Vec<f32>], s: Shape, products: Products) -> Packed {
        let (h, i) = (s.h, s.inter);
        let w = [&p[0][..], &p[2], &p[4]].concat();
        let b = [&p[1][..], &p[3], &p[5]].concat();
        let pk = |w: &[f32], n, k, b| Lin::pack(w, n, k, b, products);
        Packed {
            qkv: pk(&w, 3 * h, h, b),
            out: pk(&p[6], h, h, p[7].clone()),
            ffn_in: pk(&p[10], i, h, p[11].clone()),
            ffn_out: pk(&p[12], h, i, p[13].clone()),
        }
    }
}

/// What the forward pass of a layer keeps for its backward pass.
pub(super) struct Saved {
    x: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    mask1: Option<Vec<f32>>,
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    a: Vec<f32>,
    /// GELU outputs (the feed-forward output layer's input) and the GELU's derivative.
    g: Vec<f32>,
    dg: Vec<f32>,
    mask2: Option<Vec<f32>>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
}

/// Splits `buf` into one slice per sequence, sequence `i` taking `size(len_i)` values.
fn per_seq<'a>(
    mut buf: &'a mut [f32],
    offsets: &[usize],
    size: impl Fn(usize) -> usize,
) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(offsets.len());
    for w in offsets.windows(2) {
        let (a, b) = std::mem::take(&mut buf).split_at_mut(size(w[1] - w[0]));
        out.push(a);
        buf = b;
    }
    out
}

fn probs_len(offsets: &[usize], heads: usize) -> usize {
    offsets
        .windows(2)
        .map(|w| heads * (w[1] - w[0]) * (w[1] - w[0]))
        .sum()
}

/// Forward of one layer over the packed rows `x` (sequence `i` on rows
/// `offsets[i]..offsets[i+1]`), with dropout scales `masks` on the attention and feed-forward
/// outputs; returns the output rows and what the backward pass needs. With `keep` false
/// nothing is kept (evaluation).
pub(super) fn forward(
    x: Vec<f32>,
    w: &Packed,
    p: &[Vec<f32>],
    s: Shape,
    offsets: &[usize],
    masks: (Option<Vec<f32>>, Option<Vec<f32>>),
) -> (Vec<f32>, Saved) {
    let (h, inter) = (s.h, s.inter);
    let t = offsets[offsets.len() - 1];
    let mut qkv = ops::zeros(t * 3 * h);
    ops::linear(&x, t, &w.qkv, &mut qkv);
    let mut ctx = ops::zeros(t * h);
    let mut probs = ops::zeros(probs_len(offsets, s.heads));
    {
        let cs = per_seq(&mut ctx, offsets, |l| l * h);
        let ps = per_seq(&mut probs, offsets, |l| s.heads * l * l);
        cs.into_par_iter()
            .zip(ps)
            .zip(offsets.par_windows(2))
            .for_each_init(AttnScratch::default, |scratch, ((c, pr), o)| {
                let len = o[1] - o[0];
                let q = &qkv[o[0] * 3 * h..o[1] * 3 * h];
                kernels::attention_keep(q, len, h, s.heads, c, scratch, pr);
            });
    }
    // attention output, dropout, residual, layer norm
    let mut a = ops::zeros(t * h);
    ops::linear(&ctx, t, &w.out, &mut a);
    ops::mask_add(&mut a, masks.0.as_deref(), &x);
    let mut xhat1 = ops::zeros(t * h);
    let mut rstd1 = vec![0f32; t];
    ops::layer_norm(&mut a, h, &p[8], &p[9], s.eps, &mut xhat1, &mut rstd1);
    // feed-forward: GELU(a W1^T + b1) W2^T + b2, dropout, residual, layer norm
    let mut u = ops::zeros(t * inter);
    ops::linear(&a, t, &w.ffn_in, &mut u);
    let mut g = ops::zeros(t * inter);
    let mut dg = ops::zeros(t * inter);
    ops::gelu(&u, &mut g, &mut dg);
    drop(u);
    let mut out = ops::zeros(t * h);
    ops::linear(&g, t, &w.ffn_out, &mut out);
    ops::mask_add(&mut out, masks.1.as_deref(), &a);
    let mut xhat2 = ops::zeros(t * h);
    let mut rstd2 = vec![0f32; t];
    ops::layer_norm(&mut out, h, &p[14], &p[15], s.eps, &mut xhat2, &mut rstd2);
    let saved = Saved {
        x,
        qkv,
        probs,
        ctx,
        mask1: masks.0,
        xhat1,
        rstd1,
        a,
        g,
        dg,
        mask2: masks.1,
        xhat2,
        rstd2,
    };
    (out, saved)
}

/// Backward of one layer: `d` the gradient of its output rows; adds the gradients of its 16
/// parameters to `grads` and returns the gradient of its input rows when `need_dx`; the linear
/// layers' products as `pr` says.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    mut d: Vec<f32>,
    sv: Saved,
    p: &[Vec<f32>],
    s: Shape,
    pr: Products,
    offsets: &[usize],
    grads: &mut [Vec<f32>],
    need_dx: bool,
) -> Option<Vec<f32>> {
    let (h, inter) = (s.h, s.inter);
    let t = offsets[offsets.len() - 1];
    let hd = h / s.heads;
    let [gq, gqb, gk, gkb, gv, gvb, go, gob, g1, b1, gi, gib, gf, gfb, g2, b2] = grads else {
        unreachable!("a layer has 16 parameters")
    };
    // output layer norm; its input was ffn + a
    ops::layer_norm_back(&mut d, h, &p[14], &sv.xhat2, &sv.rstd2, g2, b2);
    let df = ops::masked(&d, sv.mask2.as_deref());
    ops::weight_grad(&df, &sv.g, t, h, inter, pr, gf, gfb);
    let mut du = ops::zeros(t * inter);
    ops::input_grad(&df, t, &p[12], (h, inter), pr, &mut du);
    drop(df);
    ops::gelu_back(&mut du, &sv.dg);
    ops::weight_grad(&du, &sv.a, t, inter, h, pr, gi, gib);
    let mut da = ops::zeros(t * h);
    ops::input_grad(&du, t, &p[10], (inter, h), pr, &mut da);
    drop(du);
    ops::add_into(&mut da, &d);
    // attention layer norm; its input was attention output + x
    ops::layer_norm_back(&mut da, h, &p[8], &sv.xhat1, &sv.rstd1, g1, b1);
    let dout = ops::masked(&da, sv.mask1.as_deref());
    ops::weight_grad(&dout, &sv.ctx, t, h, h, pr, go, gob);
    let mut dctx = ops::zeros(t * h);
    ops::input_grad(&dout, t, &p[6], (h, h), pr, &mut dctx);
    drop(dout);
    let mut dqkv = ops::zeros(t * 3 * h);
    {
        let ds = per_seq(&mut dqkv, offsets, |l| l * 3 * h);
        let mut po = Vec::with_capacity(offsets.len());
        let mut acc = 0;
        for w in offsets.windows(2) {
            po.push(acc);
            acc += s.heads * (w[1] - w[0]) * (w[1] - w[0]);
        }
        ds.into_par_iter()
            .zip(offsets.par_windows(2))
            .zip(po)
            .for_each(|((dq, o), pstart)| {
                let len = o[1] - o[0];
                let a = Attn {
                    len,
                    heads: s.heads,
                    hd,
                };
                ops::attention_back(
                    &sv.qkv[o[0] * 3 * h..o[1] * 3 * h],
                    a,
                    &sv.probs[pstart..pstart + s.heads * len * len],
                    &dctx[o[0] * h..o[1] * h],
                    dq,
                );
            });
    }
    drop(dctx);
    // the fused projection's gradients, split back into Q, K and V
    let mut gw = vec![0f32; 3 * h * h];
    let mut gb = vec![0f32; 3 * h];
    ops::weight_grad(&dqkv, &sv.x, t, 3 * h, h, pr, &mut gw, &mut gb);
    for (j, (w, b)) in [(gq, gqb), (gk, gkb), (gv, gvb)].into_iter().enumerate() {
        w.iter_mut()
            .zip(&gw[j * h * h..(j + 1) * h * h])
            .for_each(|(a, b)| *a += b);
        b.iter_mut()
            .zip(&gb[j * h..(j + 1) * h])
            .for_each(|(a, b)| *a += b);
    }
    if !need_dx {
        return None;
    }
    let wqkv = [&p[0][..], &p[2], &p[4]].concat();
    let mut dx = da;
    let mut dxa = ops::zeros(t * h);
    ops::input_grad(&dqkv, t, &wqkv, (3 * h, h), pr, &mut dxa);
    ops::add_into(&mut dx, &dxa);
    Some(dx)
}
