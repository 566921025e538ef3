//! Integration tests: train. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;
#[path = "../support/train.rs"]
mod train_support;

mod prune_agent_flag;
mod train_amc;
mod train_amc_cli;
mod train_amc_net;
mod train_checkpoint;
mod train_fashion;
mod train_kd;
mod train_kd_fashion;
mod train_kill;
mod train_loop;
mod train_net;
mod train_net_cli;
mod train_net_prune;
mod train_optim;
mod train_prune;
mod train_resume_identity;
mod train_schedule;
mod zoo_fashion;
