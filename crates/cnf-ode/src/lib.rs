//! cnf-ode
