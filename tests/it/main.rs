//! Integration tests: the real `git` and the real `git-seal` binary in
//! temporary repositories (see `harness`).

mod audit;
mod basics;
mod filter;
mod harness;
