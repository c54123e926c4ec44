//! Sluice's integration tests: one binary, so the heavy dependencies link once.

mod api;
mod common;
mod compressed;
mod concurrency;
mod crash;
mod discovery;
mod end_to_end;
mod errors;
mod external;
mod faults;
mod inspect;
mod landing;
mod local_times;
mod maintenance;
mod nested;
mod parse_modes;
mod randomized;
mod readers;
mod regression;
mod regression_source;
mod regression_sql;
mod restart;
mod s3;
mod shapes;
mod stateful;
