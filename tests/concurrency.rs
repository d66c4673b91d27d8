//! Contended stock: concurrent reservations and adjustments never oversell and never go negative.

mod common;

use std::sync::Arc;

use common::*;
use shop_inventory::{InventoryApi, InventoryClient, InventoryError, ReservationLine, SetStock};
use shop_kernel::RequestContext;

async fn race_reservations(inventory: Arc<dyn InventoryApi>, admin: &RequestContext) -> TestResult {
    inventory
        .set_stock(admin, "HOT-1".into(), SetStock { on_hand: 10 })
        .await?;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let inventory = inventory.clone();
        tasks.push(tokio::spawn(async move {
            let line = ReservationLine {
                sku: "HOT-1".into(),
                quantity: 1,
            };
            inventory
                .reserve(&ordering(), uuid::Uuid::now_v7(), vec![line])
                .await
        }));
    }
    let (mut won, mut sold_out) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(_) => won += 1,
            Err(InventoryError::InsufficientStock { .. }) => sold_out += 1,
            Err(other) => panic!("a reservation failed for another reason: {other:?}"),
        }
    }
    assert_eq!((won, sold_out), (10, 190));
    let levels = inventory.get_stock(admin, "HOT-1".into()).await?;
    assert_eq!(
        (levels.on_hand, levels.reserved, levels.available),
        (10, 10, 0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reservations_of_ten_units_in_process() -> TestResult {
    let app = spawn_app().await;
    let admin = app.ctx_for(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    race_reservations(
        app.running_modules
            .get::<dyn shop_inventory::InventoryApi>()
            .ok_or("no inventory")?,
        &admin,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reservations_of_ten_units_over_http() -> TestResult {
    let app = spawn_app().await;
    let admin = app.ctx_for(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    race_reservations(Arc::new(InventoryClient::new(app.rpc())), &admin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adjustments_never_drive_stock_negative() -> TestResult {
    let app = Arc::new(spawn_app().await);
    let admin = app.admin_token().await;
    app.set_stock(&admin, "HOT-1", 20).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, admin) = (app.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            app.adjust(&admin, "HOT-1", -1, "sold", None).await
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await?.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        30,
        "{statuses:?}"
    );
    assert_eq!(
        app.get("/api/v1/inventory/HOT-1", None).await.body["on_hand"],
        0
    );
    Ok(())
}

/// The caller's own retries of one reservation (sent again after a timeout) race each other.
async fn race_duplicate_reserves(
    inventory: Arc<dyn InventoryApi>,
    admin: &RequestContext,
) -> TestResult {
    inventory
        .set_stock(admin, "DUP-1".into(), SetStock { on_hand: 5 })
        .await?;
    // Open the pool's connections first, so the duplicates really run side by side.
    let warm: Vec<_> = (0..16)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .get_stock(&RequestContext::default(), "DUP-1".into())
                    .await
            })
        })
        .collect();
    for task in warm {
        task.await??;
    }
    let order = uuid::Uuid::now_v7();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let inventory = inventory.clone();
        tasks.push(tokio::spawn(async move {
            let line = ReservationLine {
                sku: "DUP-1".into(),
                quantity: 3,
            };
            inventory.reserve(&ordering(), order, vec![line]).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await??);
    }
    assert!(
        answers.iter().all(|r| *r == answers[0]),
        "every duplicate gets the same reservation"
    );
    let levels = inventory.get_stock(admin, "DUP-1".into()).await?;
    assert_eq!(
        (levels.on_hand, levels.reserved),
        (5, 3),
        "held exactly once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_reserves_hold_the_stock_once_in_process() -> TestResult {
    let app = spawn_app().await;
    let admin = app.ctx_for(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let inventory = app
        .running_modules
        .get::<dyn shop_inventory::InventoryApi>()
        .ok_or("no inventory")?;
    race_duplicate_reserves(inventory, &admin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_reserves_hold_the_stock_once_over_http() -> TestResult {
    let app = spawn_app().await;
    let admin = app.ctx_for(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    race_duplicate_reserves(Arc::new(InventoryClient::new(app.rpc())), &admin).await
}
