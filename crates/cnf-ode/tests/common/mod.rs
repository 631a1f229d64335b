//! Shared test problems with known solutions.
#![allow(dead_code)]
use nalgebra::{Matrix3, Vector3};

/// y' = A y on R^3: the exact solution is exp(A t) y0.
#[derive(Debug, Clone)]
pub struct Linear {
    pub a: Matrix3<f64>,
}

impl Linear {
    pub fn new(entries: [f64; 9]) -> Self {
        Self {
            a: Matrix3::from_row_slice(&entries),
        }
    }
    /// Spectral radius of A: the rate at which the solution changes.
    pub fn rate(&self) -> f64 {
        self.a
            .complex_eigenvalues()
            .iter()
            .map(|l| l.norm())
            .fold(0.0, f64::max)
    }
    /// A span over which the problem is equally hard whatever the scale of A: rho(A) t = 2.
    pub fn span(&self) -> f64 {
        2.0 / self.rate().max(1e-3)
    }
    pub fn rhs(&self) -> impl FnMut(f64, &[f64; 3], &mut [f64; 3]) + '_ {
        move |_t, y, dy| {
            let v = self.a * Vector3::from_column_slice(y);
            dy.copy_from_slice(v.as_slice());
        }
    }
    pub fn exact(&self, t: f64, y0: &[f64; 3]) -> [f64; 3] {
        let v = (self.a * t).exp() * Vector3::from_column_slice(y0);
        [v[0], v[1], v[2]]
    }
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
