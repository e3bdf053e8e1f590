//! The Supervisor daemon: registers its slots (and the component classes its binary can run) in
//! ZooKeeper, follows the assignments Nimbus writes, and runs one worker of the `worker` runtime
//! per assigned slot, with heartbeats and error reports back to ZooKeeper.

pub mod daemon;
