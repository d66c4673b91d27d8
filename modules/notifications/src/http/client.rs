//! `NotificationsClient`: the notifications contract over HTTP, generated with the trait by
//! `shop_kernel::contract!` so that the two can never disagree.

pub use crate::api::NotificationsClient;
