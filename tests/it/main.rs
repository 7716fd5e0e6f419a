//! Integration tests: the real `git` and the real `git-seal` binary in
//! temporary repositories (see `harness`).

mod accept;
mod audit;
mod audit_log;
mod basics;
mod chain;
mod check;
mod ci;
mod expiry;
mod filter;
mod hardening;
mod harness;
mod hooks;
mod kill;
mod kms;
mod kms_client;
mod lifecycle;
mod lock;
mod manual;
mod output;
mod package;
mod pkcs11;
mod policy;
mod review;
