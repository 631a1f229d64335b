//! Shared helpers for the flow tests.
#![allow(dead_code)]
use cnf_field::{Activation, Mlp};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");

/// The diffrax-trained 8gaussians model (see tests/data/README.md).
pub fn diffrax_model<T: cnf_field::Real>() -> Mlp<T> {
    Mlp::from_npz(
        format!("{DATA}/cnf_8g_diffrax_1000it.npz"),
        &[64, 64, 64],
        Activation::Tanh,
    )
    .unwrap()
}

/// Rows of logp_reference.csv: (x, logp, z1).
pub fn reference_rows() -> Vec<([f64; 2], f64, [f64; 2])> {
    let text = std::fs::read_to_string(format!("{DATA}/logp_reference.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|s| s.trim().parse().unwrap()).collect();
            ([v[0], v[1]], v[2], [v[3], v[4]])
        })
        .collect()
}
