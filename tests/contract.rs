//! Contract suites: one body per module, run against the in-process implementation and against the HTTP
//! client talking to a spawned server of that module. Same results, or the boundary is broken.

mod common;

use std::sync::Arc;

use common::*;
use shop_catalog::{
    CatalogApi, CatalogClient, CatalogError, NewProduct, ProductPatch, ProductQuery,
};
use shop_identity::{Credentials, IdentityApi, IdentityClient, IdentityError, NewUser};
use shop_inventory::{
    Adjustment, InventoryApi, InventoryClient, InventoryError, ReservationLine, ReservationStatus,
    SetStock,
};
use shop_kernel::events::{Event, FailingQuery, ResubmitEvents, Resubmitted};
use shop_kernel::{Money, RequestContext, Role};
use shop_notifications::{
    NotificationQuery, NotificationsApi, NotificationsClient, NotificationsError,
};
use shop_ordering::{
    NewOrder, NewOrderLine, OrderQuery, OrderStatus, OrderingApi, OrderingClient, OrderingError,
};
use shop_payments::{
    NewCredit, PaymentStatus, PaymentsApi, PaymentsClient, PaymentsError, TransactionKind,
    TransactionQuery,
};
use uuid::Uuid;

struct Apis {
    identity: Arc<dyn IdentityApi>,
    catalog: Arc<dyn CatalogApi>,
    inventory: Arc<dyn InventoryApi>,
    payments: Arc<dyn PaymentsApi>,
    ordering: Arc<dyn OrderingApi>,
    notifications: Arc<dyn NotificationsApi>,
}

#[derive(Clone, Copy)]
enum Transport {
    InProcess,
    Http,
}

impl Apis {
    fn of(app: &TestApp, transport: Transport) -> Apis {
        match transport {
            Transport::InProcess => {
                let m = &app.running_modules;
                assert!(
                    m.databases.len() == shop::modules::ALL.len(),
                    "the in-process run uses the local implementations"
                );
                Apis {
                    identity: m
                        .get::<dyn IdentityApi>()
                        .unwrap_or_else(|| panic!("no identity")),
                    catalog: m
                        .get::<dyn CatalogApi>()
                        .unwrap_or_else(|| panic!("no catalog")),
                    inventory: m
                        .get::<dyn InventoryApi>()
                        .unwrap_or_else(|| panic!("no inventory")),
                    payments: m
                        .get::<dyn PaymentsApi>()
                        .unwrap_or_else(|| panic!("no payments")),
                    ordering: m
                        .get::<dyn OrderingApi>()
                        .unwrap_or_else(|| panic!("no ordering")),
                    notifications: m
                        .get::<dyn NotificationsApi>()
                        .unwrap_or_else(|| panic!("no notifications")),
                }
            }
            Transport::Http => Apis {
                identity: Arc::new(IdentityClient::new(app.rpc())),
                catalog: Arc::new(CatalogClient::new(app.rpc())),
                inventory: Arc::new(InventoryClient::new(app.rpc())),
                payments: Arc::new(PaymentsClient::new(app.rpc())),
                ordering: Arc::new(OrderingClient::new(app.rpc())),
                notifications: Arc::new(NotificationsClient::new(app.rpc())),
            },
        }
    }
}

fn line(sku: &str, quantity: i64) -> ReservationLine {
    ReservationLine {
        sku: sku.into(),
        quantity,
    }
}

macro_rules! on_both_transports {
    ($suite:ident, $vars:expr, $in_process:ident, $over_http:ident) => {
        #[tokio::test]
        async fn $in_process() -> TestResult {
            let app = spawn_with($vars).await;
            let callers = Callers::of(&app).await;
            $suite(&Apis::of(&app, Transport::InProcess), &callers).await
        }

        #[tokio::test]
        async fn $over_http() -> TestResult {
            let app = spawn_with($vars).await;
            let callers = Callers::of(&app).await;
            $suite(&Apis::of(&app, Transport::Http), &callers).await
        }
    };
}

async fn inventory_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.inventory;
    let sku = || "SKU-1".to_string();
    assert_eq!(
        api.get_stock(&c.anonymous, sku()).await,
        Err(InventoryError::SkuNotFound { sku: sku() })
    );
    assert!(matches!(
        api.get_stock(&c.anonymous, "bad sku".into()).await,
        Err(InventoryError::Validation(_))
    ));
    assert_eq!(
        api.set_stock(&c.anonymous, sku(), SetStock { on_hand: 5 })
            .await,
        Err(InventoryError::Unauthenticated)
    );
    assert_eq!(
        api.set_stock(&c.customer, sku(), SetStock { on_hand: 5 })
            .await,
        Err(InventoryError::Forbidden)
    );
    let levels = api
        .set_stock(&c.admin, sku(), SetStock { on_hand: 5 })
        .await?;
    assert_eq!(
        (levels.on_hand, levels.reserved, levels.available),
        (5, 0, 5)
    );
    api.set_stock(&c.admin, "SKU-2".into(), SetStock { on_hand: 1 })
        .await?;

    let adj = |delta| Adjustment {
        delta,
        reason: "recount".into(),
    };
    assert_eq!(
        api.adjust_stock(&c.admin, sku(), adj(-6), None).await,
        Err(InventoryError::InsufficientStock { sku: sku() })
    );
    assert_eq!(
        api.adjust_stock(&c.admin, sku(), adj(2), Some("k".into()))
            .await?
            .on_hand,
        7
    );
    assert_eq!(
        api.adjust_stock(&c.admin, sku(), adj(2), Some("k".into()))
            .await?
            .on_hand,
        7,
        "replayed"
    );
    assert_eq!(
        api.adjust_stock(&c.admin, sku(), adj(3), Some("k".into()))
            .await,
        Err(InventoryError::IdempotencyKeyReused)
    );
    assert_eq!(
        api.adjust_stock(&c.admin, sku(), adj(-2), None)
            .await?
            .on_hand,
        5
    );

    // Reservations are for the ordering module only.
    let order = Uuid::now_v7();
    assert_eq!(
        api.reserve(&c.anonymous, order, vec![line("SKU-1", 1)])
            .await,
        Err(InventoryError::Unauthenticated)
    );
    assert_eq!(
        api.reserve(&c.customer, order, vec![line("SKU-1", 1)])
            .await,
        Err(InventoryError::Forbidden)
    );
    for not_ordering in [&c.other_module, &c.system] {
        assert_eq!(
            api.reserve(not_ordering, order, vec![line("SKU-1", 1)])
                .await,
            Err(InventoryError::Forbidden),
            "only ordering holds stock"
        );
        assert_eq!(
            api.release_reservation(not_ordering, order).await,
            Err(InventoryError::Forbidden)
        );
    }
    assert!(matches!(
        api.reserve(&c.module, order, vec![]).await,
        Err(InventoryError::Validation(_))
    ));
    assert!(matches!(
        api.reserve(&c.module, order, vec![line("SKU-1", 1), line("SKU-1", 1)])
            .await,
        Err(InventoryError::Validation(_))
    ));
    assert!(matches!(
        api.reserve(&c.module, order, vec![line("SKU-1", 0)]).await,
        Err(InventoryError::Validation(_))
    ));

    // All or nothing: SKU-2 lacks stock, so SKU-1 is not held either.
    assert_eq!(
        api.reserve(&c.module, order, vec![line("SKU-1", 2), line("SKU-2", 2)])
            .await,
        Err(InventoryError::InsufficientStock {
            sku: "SKU-2".into()
        })
    );
    assert_eq!(api.get_stock(&c.anonymous, sku()).await?.reserved, 0);
    assert_eq!(
        api.reserve(&c.module, order, vec![line("NEVER-STOCKED", 1)])
            .await,
        Err(InventoryError::InsufficientStock {
            sku: "NEVER-STOCKED".into()
        })
    );

    let held = api
        .reserve(&c.module, order, vec![line("SKU-2", 1), line("SKU-1", 2)])
        .await?;
    assert_eq!(held.status, ReservationStatus::Held);
    assert_eq!(
        held.lines,
        vec![line("SKU-1", 2), line("SKU-2", 1)],
        "lines come back sorted"
    );
    assert_eq!(
        api.reserve(&c.module, order, vec![line("SKU-1", 2), line("SKU-2", 1)])
            .await?,
        held,
        "idempotent"
    );
    assert_eq!(
        api.reserve(&c.module, order, vec![line("SKU-1", 1)]).await,
        Err(InventoryError::ReservationConflict)
    );
    let levels = api.get_stock(&c.anonymous, sku()).await?;
    assert_eq!(
        (levels.on_hand, levels.reserved, levels.available),
        (5, 2, 3)
    );
    assert_eq!(api.get_reservation(&c.module, order).await?, held);
    assert_eq!(
        api.get_reservation(&c.customer, order).await,
        Err(InventoryError::Forbidden)
    );
    assert_eq!(
        api.set_stock(&c.admin, sku(), SetStock { on_hand: 1 })
            .await,
        Err(InventoryError::BelowReserved { sku: sku() })
    );

    let committed = api.commit_reservation(&c.module, order).await?;
    assert_eq!(committed.status, ReservationStatus::Committed);
    assert_eq!(
        api.commit_reservation(&c.module, order).await?,
        committed,
        "idempotent"
    );
    let levels = api.get_stock(&c.anonymous, sku()).await?;
    assert_eq!((levels.on_hand, levels.reserved), (3, 0));

    // Releasing a committed reservation (a cancelled order) returns the units.
    let released = api.release_reservation(&c.module, order).await?;
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(
        api.release_reservation(&c.module, order).await?,
        released,
        "idempotent"
    );
    assert_eq!(api.get_stock(&c.anonymous, sku()).await?.on_hand, 5);
    assert_eq!(
        api.commit_reservation(&c.module, order).await,
        Err(InventoryError::ReservationClosed("released".into()))
    );

    // Releasing first leaves a tombstone: a late reserve for that order holds nothing.
    let late = Uuid::now_v7();
    assert_eq!(
        api.release_reservation(&c.module, late).await?.status,
        ReservationStatus::Released
    );
    assert_eq!(
        api.reserve(&c.module, late, vec![line("SKU-1", 1)]).await,
        Err(InventoryError::ReservationConflict)
    );
    assert_eq!(api.get_stock(&c.anonymous, sku()).await?.reserved, 0);

    let unknown = Uuid::now_v7();
    assert_eq!(
        api.get_reservation(&c.module, unknown).await,
        Err(InventoryError::ReservationNotFound)
    );
    assert_eq!(
        api.commit_reservation(&c.module, unknown).await,
        Err(InventoryError::ReservationNotFound)
    );
    Ok(())
}

on_both_transports!(
    inventory_contract,
    &[],
    inventory_contract_in_process,
    inventory_contract_over_http
);

async fn reservation_expiry_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.inventory;
    api.set_stock(&c.admin, "SKU-1".into(), SetStock { on_hand: 3 })
        .await?;
    let order = Uuid::now_v7();
    api.reserve(&c.module, order, vec![line("SKU-1", 3)])
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Either the sweeper or the commit itself notices the expiry; the units are back either way.
    let outcome = api.commit_reservation(&c.module, order).await;
    assert_eq!(
        outcome,
        Err(InventoryError::ReservationClosed("expired".into()))
    );
    assert_eq!(
        api.get_reservation(&c.module, order).await?.status,
        ReservationStatus::Expired
    );
    assert_eq!(
        api.get_stock(&c.anonymous, "SKU-1".into()).await?.available,
        3
    );
    // An expired hold does not block a new order.
    api.reserve(&c.module, Uuid::now_v7(), vec![line("SKU-1", 3)])
        .await?;
    Ok(())
}

on_both_transports!(
    reservation_expiry_contract,
    &[("SHOP_RESERVATION_TTL_SECS", "1")],
    reservations_expire_in_process,
    reservations_expire_over_http
);

fn new_product(sku: &str, name: &str) -> NewProduct {
    NewProduct {
        sku: sku.into(),
        name: name.into(),
        description: String::new(),
        price: Money::new(500, "EUR"),
    }
}

async fn catalog_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.catalog;
    assert_eq!(
        api.create_product(&c.anonymous, new_product("A-1", "Apple"))
            .await,
        Err(CatalogError::Unauthenticated)
    );
    assert_eq!(
        api.create_product(&c.customer, new_product("A-1", "Apple"))
            .await,
        Err(CatalogError::Forbidden)
    );
    let apple = api
        .create_product(&c.admin, new_product("A-1", "Apple"))
        .await?;
    let pear = api
        .create_product(&c.admin, new_product("P-1", "Pear"))
        .await?;
    assert_eq!(
        api.create_product(&c.admin, new_product("A-1", "Again"))
            .await,
        Err(CatalogError::SkuTaken("A-1".into()))
    );
    let mut bad = new_product("bad sku", "");
    bad.price = Money::new(-1, "USD");
    match api.create_product(&c.admin, bad).await {
        Err(CatalogError::Validation(fields)) => {
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(
                names,
                vec!["name", "price.amount_minor", "price.currency", "sku"]
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(api.get_product(&c.anonymous, apple.id).await?, apple);
    assert_eq!(
        api.get_product(&c.anonymous, Uuid::now_v7()).await,
        Err(CatalogError::NotFound)
    );
    let many = api
        .get_products(&c.module, vec![pear.id, Uuid::now_v7(), apple.id])
        .await?;
    assert_eq!(many, vec![apple.clone(), pear.clone()]);

    let patch = ProductPatch {
        active: Some(false),
        ..Default::default()
    };
    assert_eq!(
        api.update_product(&c.customer, pear.id, patch.clone())
            .await,
        Err(CatalogError::Forbidden)
    );
    let hidden = api.update_product(&c.admin, pear.id, patch.clone()).await?;
    assert!(!hidden.active);
    assert_eq!(
        api.update_product(&c.admin, Uuid::now_v7(), patch).await,
        Err(CatalogError::NotFound)
    );

    let page = api
        .list_products(&c.anonymous, ProductQuery::default())
        .await?;
    assert_eq!(page.items, vec![apple.clone()]);
    assert_eq!(page.next_cursor, None);
    let q = ProductQuery {
        q: Some("APP".into()),
        ..Default::default()
    };
    assert_eq!(api.list_products(&c.anonymous, q).await?.items.len(), 1);
    let q = ProductQuery {
        limit: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        api.list_products(&c.anonymous, q).await,
        Err(CatalogError::Validation(_))
    ));
    Ok(())
}

on_both_transports!(
    catalog_contract,
    &[],
    catalog_contract_in_process,
    catalog_contract_over_http
);

async fn identity_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.identity;
    let new = NewUser {
        email: "Grace@Example.com".into(),
        password: "grace-password-1".into(),
        display_name: "Grace".into(),
    };
    let grace = api.register(&c.anonymous, new.clone()).await?;
    assert_eq!(
        (grace.email.as_str(), grace.role),
        ("grace@example.com", Role::Customer)
    );
    assert_eq!(
        api.register(&c.anonymous, new).await,
        Err(IdentityError::EmailTaken)
    );
    let bad = NewUser {
        email: "x".into(),
        password: "short".into(),
        display_name: "".into(),
    };
    assert!(
        matches!(api.register(&c.anonymous, bad).await, Err(IdentityError::Validation(f)) if f.len() == 3)
    );

    let creds = |password: &str| Credentials {
        email: "grace@example.com".into(),
        password: password.into(),
    };
    let token = api
        .issue_token(&c.anonymous, creds("grace-password-1"))
        .await?;
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(
        api.issue_token(&c.anonymous, creds("wrong-password!"))
            .await,
        Err(IdentityError::InvalidCredentials)
    );

    assert_eq!(
        api.me(&c.anonymous).await,
        Err(IdentityError::Unauthenticated)
    );
    let customer = api.me(&c.customer).await?;
    assert_eq!(customer.email, "contract-customer@shop.test");
    assert_eq!(
        api.get_user(&c.customer, customer.id).await?,
        customer,
        "users see themselves"
    );
    assert_eq!(
        api.get_user(&c.customer, grace.id).await,
        Err(IdentityError::NotFound),
        "not another's"
    );
    assert_eq!(
        api.get_user(&c.anonymous, grace.id).await,
        Err(IdentityError::Unauthenticated)
    );
    assert_eq!(api.get_user(&c.admin, grace.id).await?, grace);
    assert_eq!(
        api.get_user(&c.customer.as_module("gateway"), grace.id)
            .await,
        Err(IdentityError::NotFound),
        "a module the rule does not name reads only what its user may"
    );
    assert_eq!(api.get_user(&c.module, grace.id).await?, grace);
    assert_eq!(
        api.get_user(&c.module, Uuid::now_v7()).await,
        Err(IdentityError::NotFound)
    );

    let jwks = api.jwks(&c.anonymous).await?;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kty, "OKP");

    // Bulk resubmits of identity's failed events: admins only.
    assert_eq!(
        api.resubmit_events(&c.customer, ResubmitEvents::default())
            .await,
        Err(IdentityError::Forbidden)
    );
    // A type the module does not publish matches nothing.
    assert_eq!(
        api.resubmit_events(
            &c.admin,
            ResubmitEvents {
                event_type: Some("ordering.order_confirmed".into()),
                parked_only: None
            }
        )
        .await,
        Ok(Resubmitted { resubmitted: 0 })
    );
    assert_eq!(
        api.resubmit_events(
            &c.admin,
            ResubmitEvents {
                event_type: Some("identity.user_registered".into()),
                parked_only: Some(true)
            }
        )
        .await,
        Ok(Resubmitted { resubmitted: 0 }),
        "nothing has failed"
    );

    // The admin bootstrap belongs to the system: no user or module may call it, on any transport.
    for caller in [&c.customer, &c.admin, &c.module] {
        assert_eq!(
            api.ensure_admin(
                caller,
                "grace@example.com".into(),
                "grace-password-1".into()
            )
            .await,
            Err(IdentityError::Forbidden)
        );
    }
    Ok(())
}

on_both_transports!(
    identity_contract,
    &[],
    identity_contract_in_process,
    identity_contract_over_http
);

async fn throttling_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.identity;
    let from = |addr: &str| shop_kernel::RequestContext {
        client_addr: Some(addr.into()),
        ..c.anonymous.clone()
    };
    let wrong = |email: &str| Credentials {
        email: email.into(),
        password: "wrong-password!".into(),
    };
    for email in ["a@example.com", "b@example.com"] {
        assert_eq!(
            api.issue_token(&from("203.0.113.1"), wrong(email)).await,
            Err(IdentityError::InvalidCredentials)
        );
    }
    // The client that failed twice waits; another client is judged on its own record, which proves the
    // client address crossed the service boundary.
    assert!(matches!(
        api.issue_token(&from("203.0.113.1"), wrong("c@example.com")).await,
        Err(IdentityError::Throttled { retry_after }) if retry_after > 0
    ));
    assert_eq!(
        api.issue_token(&from("198.51.100.7"), wrong("c@example.com"))
            .await,
        Err(IdentityError::InvalidCredentials)
    );
    Ok(())
}

on_both_transports!(
    throttling_contract,
    &[("SHOP_LOGIN_MAX_FAILURES_PER_CLIENT", "2")],
    throttling_sees_the_client_in_process,
    throttling_sees_the_client_over_http
);

fn eur(amount_minor: i64) -> Money {
    Money::new(amount_minor, "EUR")
}

async fn payments_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.payments;
    let customer = c.customer.user().map(|u| u.id).ok_or("no customer")?;
    let wallet = api.wallet(&c.customer).await?;
    assert_eq!((wallet.balance, wallet.updated_at), (eur(0), None));
    assert_eq!(
        api.wallet(&c.anonymous).await,
        Err(PaymentsError::Unauthenticated)
    );

    let credit = |amount_minor| NewCredit {
        amount_minor,
        reason: "welcome".into(),
    };
    assert_eq!(
        api.credit(&c.customer, customer, credit(100), None).await,
        Err(PaymentsError::Forbidden)
    );
    assert_eq!(
        api.credit(&c.admin, Uuid::now_v7(), credit(100), None)
            .await,
        Err(PaymentsError::UserNotFound)
    );
    assert!(matches!(
        api.credit(&c.admin, customer, credit(0), None).await,
        Err(PaymentsError::Validation(_))
    ));
    let first = api
        .credit(&c.admin, customer, credit(1000), Some("k1".into()))
        .await?;
    assert_eq!(
        (first.kind, first.amount.clone()),
        (TransactionKind::Credit, eur(1000))
    );
    assert_eq!(
        api.credit(&c.admin, customer, credit(1000), Some("k1".into()))
            .await?,
        first,
        "replayed, not applied twice"
    );
    assert_eq!(
        api.credit(&c.admin, customer, credit(5), Some("k1".into()))
            .await,
        Err(PaymentsError::IdempotencyKeyReused)
    );
    assert_eq!(api.wallet(&c.customer).await?.balance, eur(1000));

    // Charges and refunds are ordering's, idempotent by order id.
    let order = Uuid::now_v7();
    assert_eq!(
        api.charge(&c.customer, order, customer, eur(300)).await,
        Err(PaymentsError::Forbidden)
    );
    assert_eq!(
        api.charge(&c.other_module, order, customer, eur(300)).await,
        Err(PaymentsError::Forbidden),
        "a notifications credential cannot charge a wallet"
    );
    let paid = api.charge(&c.module, order, customer, eur(300)).await?;
    assert_eq!(paid.status, PaymentStatus::Charged);
    assert_eq!(
        api.charge(&c.module, order, customer, eur(300)).await?,
        paid
    );
    assert_eq!(
        api.charge(&c.module, order, customer, eur(301)).await,
        Err(PaymentsError::PaymentConflict)
    );
    assert!(matches!(
        api.charge(&c.module, Uuid::now_v7(), customer, Money::new(5, "USD"))
            .await,
        Err(PaymentsError::Validation(_))
    ));
    assert_eq!(api.wallet(&c.customer).await?.balance, eur(700));

    let too_much = Uuid::now_v7();
    assert_eq!(
        api.charge(&c.module, too_much, customer, eur(701)).await,
        Err(PaymentsError::InsufficientFunds { balance: 700 })
    );
    assert_eq!(
        api.charge(&c.module, too_much, customer, eur(701)).await,
        Err(PaymentsError::InsufficientFunds { balance: 700 }),
        "a repeat returns the first outcome"
    );

    let refunded = api.refund(&c.module, order).await?;
    assert_eq!(
        (refunded.status, refunded.amount.clone()),
        (PaymentStatus::Refunded, eur(300))
    );
    assert_eq!(api.refund(&c.module, order).await?, refunded);
    assert_eq!(api.wallet(&c.customer).await?.balance, eur(1000));
    assert_eq!(
        api.charge(&c.module, order, customer, eur(300)).await,
        Err(PaymentsError::PaymentClosed)
    );
    // Refunding an order never charged leaves a tombstone: a late charge cannot go through.
    let late = Uuid::now_v7();
    assert_eq!(api.refund(&c.module, late).await?.amount, eur(0));
    assert_eq!(
        api.charge(&c.module, late, customer, eur(1)).await,
        Err(PaymentsError::PaymentClosed)
    );

    let page = api
        .transactions(
            &c.customer,
            TransactionQuery {
                limit: Some(2),
                cursor: None,
            },
        )
        .await?;
    let kinds: Vec<_> = page.items.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        vec![TransactionKind::Refund, TransactionKind::Charge]
    );
    let rest = api
        .transactions(
            &c.customer,
            TransactionQuery {
                limit: Some(2),
                cursor: page.next_cursor.clone(),
            },
        )
        .await?;
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0], first);
    assert_eq!(
        api.transactions(&c.admin, TransactionQuery::default())
            .await?
            .items,
        vec![],
        "each user sees only their own ledger"
    );
    Ok(())
}

on_both_transports!(
    payments_contract,
    &[],
    payments_contract_in_process,
    payments_contract_over_http
);

fn order_of(lines: &[(Uuid, i64)]) -> NewOrder {
    NewOrder {
        lines: lines
            .iter()
            .map(|&(product_id, quantity)| NewOrderLine {
                product_id,
                quantity,
            })
            .collect(),
    }
}

async fn ordering_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.ordering;
    let customer = c.customer.user().map(|u| u.id).ok_or("no customer")?;
    let mug = apis
        .catalog
        .create_product(&c.admin, new_product("ORD-MUG", "Mug"))
        .await?;
    let tea = apis
        .catalog
        .create_product(&c.admin, new_product("ORD-TEA", "Tea"))
        .await?;
    for sku in ["ORD-MUG", "ORD-TEA"] {
        apis.inventory
            .set_stock(&c.admin, sku.into(), SetStock { on_hand: 5 })
            .await?;
    }
    let credit = NewCredit {
        amount_minor: mug.price.amount_minor * 4,
        reason: "contract".into(),
    };
    apis.payments
        .credit(&c.admin, customer, credit, None)
        .await?;

    let two_mugs = order_of(&[(mug.id, 2)]);
    assert_eq!(
        api.place_order(&c.anonymous, two_mugs.clone(), None).await,
        Err(OrderingError::Unauthenticated)
    );
    let order = api
        .place_order(&c.customer, two_mugs.clone(), Some("o-1".into()))
        .await?;
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.user_id, customer);
    assert_eq!(order.total.amount_minor, mug.price.amount_minor * 2);
    assert_eq!(
        (order.lines[0].sku.as_str(), order.lines[0].quantity),
        ("ORD-MUG", 2)
    );
    assert_eq!(
        api.place_order(&c.customer, two_mugs.clone(), Some("o-1".into()))
            .await?,
        order,
        "replayed"
    );
    assert_eq!(
        api.place_order(&c.customer, order_of(&[(mug.id, 1)]), Some("o-1".into()))
            .await,
        Err(OrderingError::IdempotencyKeyReused)
    );
    assert_eq!(
        api.place_order(&c.customer, order_of(&[(tea.id, 6)]), None)
            .await,
        Err(OrderingError::InsufficientStock {
            sku: "ORD-TEA".into()
        })
    );
    assert_eq!(
        api.place_order(&c.customer, order_of(&[(mug.id, 3)]), None)
            .await,
        Err(OrderingError::InsufficientFunds {
            balance: mug.price.amount_minor * 2
        })
    );
    for bad in [
        order_of(&[]),
        order_of(&[(mug.id, 0)]),
        order_of(&[(Uuid::now_v7(), 1)]),
        order_of(&[(mug.id, 1), (mug.id, 1)]),
    ] {
        assert!(matches!(
            api.place_order(&c.customer, bad, None).await,
            Err(OrderingError::Validation(_))
        ));
    }

    assert_eq!(api.get_order(&c.customer, order.id).await?, order);
    assert_eq!(api.get_order(&c.admin, order.id).await?, order);
    assert_eq!(
        api.get_order(&c.customer, Uuid::now_v7()).await,
        Err(OrderingError::OrderNotFound)
    );
    let page = api
        .list_orders(
            &c.customer,
            OrderQuery {
                limit: Some(2),
                cursor: None,
            },
        )
        .await?;
    let statuses: Vec<_> = page.items.iter().map(|o| o.status).collect();
    assert_eq!(statuses, vec![OrderStatus::Failed, OrderStatus::Failed]);
    let rest = api
        .list_orders(
            &c.customer,
            OrderQuery {
                limit: Some(2),
                cursor: page.next_cursor,
            },
        )
        .await?;
    assert_eq!(rest.items, vec![order.clone()]);
    assert_eq!(
        api.list_orders(&c.admin, OrderQuery::default())
            .await?
            .items,
        vec![],
        "each user lists only their own orders"
    );

    let cancelled = api.cancel_order(&c.customer, order.id).await?;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(api.cancel_order(&c.admin, order.id).await?, cancelled);
    assert_eq!(
        apis.payments
            .wallet(&c.customer)
            .await?
            .balance
            .amount_minor,
        mug.price.amount_minor * 4
    );
    assert_eq!(
        apis.inventory
            .get_stock(&c.anonymous, "ORD-MUG".into())
            .await?
            .on_hand,
        5
    );
    let failed = &page.items[0];
    assert_eq!(
        api.cancel_order(&c.customer, failed.id).await,
        Err(OrderingError::NotCancellable {
            status: "failed".into()
        })
    );

    assert_eq!(
        api.failing_events(&c.customer, FailingQuery::default())
            .await,
        Err(OrderingError::Forbidden)
    );
    assert_eq!(
        api.failing_events(&c.admin, FailingQuery::default())
            .await?
            .items,
        vec![]
    );
    assert_eq!(
        api.resubmit_event(&c.admin, Uuid::now_v7()).await,
        Err(OrderingError::EventNotFound)
    );
    assert_eq!(
        api.resubmit_events(&c.customer, ResubmitEvents::default())
            .await,
        Err(OrderingError::Forbidden)
    );
    // A type the module does not publish matches nothing.
    assert_eq!(
        api.resubmit_events(
            &c.admin,
            ResubmitEvents {
                event_type: Some("identity.user_registered".into()),
                parked_only: None
            }
        )
        .await,
        Ok(Resubmitted { resubmitted: 0 })
    );
    assert_eq!(
        api.resubmit_events(&c.admin, ResubmitEvents::default())
            .await,
        Ok(Resubmitted { resubmitted: 0 }),
        "every event was delivered at the first attempt"
    );
    Ok(())
}

on_both_transports!(
    ordering_contract,
    &[],
    ordering_contract_in_process,
    ordering_contract_over_http
);

async fn notifications_contract(apis: &Apis, c: &Callers) -> TestResult {
    let api = &apis.notifications;
    let customer = c.customer.user().map(|u| u.id).ok_or("no customer")?;
    let welcome: Event = serde_json::from_value(serde_json::json!({
        "id": Uuid::now_v7(),
        "type": "identity.user_registered",
        "version": 1,
        "occurred_at": "2026-11-26T12:00:00Z",
        "payload": {
            "user_id": customer,
            "email": "contract-customer@shop.test",
            "display_name": "Contract Tester",
        },
    }))?;
    let as_identity = RequestContext::default().as_module("identity");
    assert_eq!(
        api.handle_event(&c.customer, welcome.clone()).await,
        Err(NotificationsError::Forbidden)
    );
    assert_eq!(
        api.handle_event(
            &RequestContext::default().as_module("payments"),
            welcome.clone()
        )
        .await,
        Err(NotificationsError::Forbidden),
        "payments publishes nothing notifications takes"
    );
    assert!(
        api.handle_event(&as_identity, welcome.clone())
            .await?
            .applied
    );
    assert!(
        !api.handle_event(&as_identity, welcome.clone())
            .await?
            .applied,
        "a redelivery changes nothing"
    );
    // Each publisher hands over its own events only: a module (or a leaked credential of it) cannot forge
    // another's.
    let as_ordering = RequestContext::default().as_module("ordering");
    let mut forged = welcome.clone();
    forged.id = Uuid::now_v7();
    assert_eq!(
        api.handle_event(&as_ordering, forged).await,
        Err(NotificationsError::Forbidden),
        "ordering handing over identity's event"
    );
    let confirmed: Event = serde_json::from_value(serde_json::json!({
        "id": Uuid::now_v7(),
        "type": "ordering.order_confirmed",
        "version": 1,
        "occurred_at": "2026-11-26T12:00:00Z",
        "payload": {
            "order_id": Uuid::now_v7(),
            "user_id": customer,
            "lines": [],
            "total": { "amount_minor": 100, "currency": "EUR" },
        },
    }))?;
    assert_eq!(
        api.handle_event(&as_identity, confirmed).await,
        Err(NotificationsError::Forbidden),
        "identity handing over ordering's event"
    );
    let mut unknown = welcome.clone();
    unknown.id = Uuid::now_v7();
    unknown.event_type = "identity.user_renamed".into();
    assert!(!api.handle_event(&as_identity, unknown).await?.applied);
    let mut garbled = welcome.clone();
    garbled.id = Uuid::now_v7();
    garbled.payload = serde_json::json!({ "user_id": 7 });
    assert!(matches!(
        api.handle_event(&as_identity, garbled).await,
        Err(NotificationsError::Validation(_))
    ));

    let page = api
        .list_notifications(&c.customer, NotificationQuery::default())
        .await?;
    let ours: Vec<_> = page
        .items
        .iter()
        .filter(|n| n.subject == "Welcome to the shop, Contract Tester")
        .collect();
    assert_eq!(ours.len(), 1, "{page:?}");
    assert_eq!(ours[0].sent_at, None, "no SMTP configured");
    assert_eq!(
        api.list_notifications(&c.anonymous, NotificationQuery::default())
            .await,
        Err(NotificationsError::Unauthenticated)
    );
    assert!(matches!(
        api.list_notifications(
            &c.customer,
            NotificationQuery {
                limit: Some(0),
                cursor: None
            }
        )
        .await,
        Err(NotificationsError::Validation(_))
    ));
    let admins = api
        .list_notifications(&c.admin, NotificationQuery::default())
        .await?;
    assert!(
        admins
            .items
            .iter()
            .all(|n| n.subject != "Welcome to the shop, Contract Tester"),
        "each user sees only their own messages"
    );
    Ok(())
}

on_both_transports!(
    notifications_contract,
    &[],
    notifications_contract_in_process,
    notifications_contract_over_http
);
