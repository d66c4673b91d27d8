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
            .inventory
            .clone()
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
