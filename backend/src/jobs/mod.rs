//! The job queue: `POST /todos` records a job and puts it on a Redis stream; workers in
//! every replica (one consumer group) insert the todo.
//!
//! Delivery is at least once; the effect is exactly once because a todo is unique per job
//! (`todos.job_id`) and a finished job is acknowledged without running again. Entries left
//! pending by a dead consumer are taken over after the visibility timeout (`XAUTOCLAIM`);
//! a job that fails `JOB_MAX_ATTEMPTS` times moves to the dead-letter stream with its error.
//!
//! Stream message format (an API boundary): one field, `job_id` = the job's UUID.

pub mod queue;
pub(crate) mod repo;
