#pragma once
/// The inventory role (DESIGN §1, §3, §5): the catalogue and the stock, behind one ledger.
///
/// Consumes `inventory.stock.updated`, in one transaction with its inbox record: each movement, in
/// payload order, goes through stock_keeper (stock_keeper.hpp: locked, decided by stock_rules.hpp,
/// guarded update, ledger row; shortfalls and unknown skus reported, never applied partially, the
/// other movements still applied). A payload that fails validation is answered as a rejection
/// `invalid_payload` naming the field, with an audit failure `stock.rejected`.
///
/// Routes (JSON; camelCase; errors in the one http_error shape; lists page with `limit` (1..100,
/// default 20) and an opaque `cursor`, answering `nextCursor` (null on the last page)):
///   GET  /api/products[?active=true|false]  public catalogue, by sku:
///        {"products":[{sku,name,priceCents,currency,stock,active,updatedAt}],"nextCursor"}
///   GET  /api/products/{sku}                public; 404 `not_found`
///   POST /api/products                      bearer; upsert {sku,name,priceCents,currency,active?,stock?}:
///        201 created / 200 updated, the product. `stock` is for creation only (a positive one writes a
///        `restock` ledger row); given for an existing product it is refused with 409 `use_adjust`, so
///        every stock change of an existing product goes through the ledger. Audit `product.upserted`.
///   POST /api/stock/{sku}/adjust            bearer; {delta, reason: restock|adjustment|cancel, orderId?,
///        note?}: 200 with the ledger row; a decrement the stock cannot cover is still recorded,
///        audited and measured as a shortfall, and answered 409 `insufficient_stock` with
///        `available`, `requested` and the ledger row (`movement`); 409 `stock_limit` past max_stock;
///        404 for an unknown sku.
///   GET  /api/stock/{sku}/movements         bearer; the ledger, newest first:
///        {"movements":[{id,sku,requestedDelta,appliedDelta,stockAfter,reason,status,orderId,eventId,
///        correlationId,createdAt}],"nextCursor"}
/// API writes commit their ledger rows and outbox events together, then wake the outbox dispatcher;
/// their correlation id is the request's (X-Correlation-Id) or a fresh `api_<ULID>`.

#include "shopd/app/role.hpp"

#include <memory>

namespace shopd::inventory {

/// Register the handler and routes on ctx. The returned role has no background work of its own
/// (the outbox dispatcher belongs to the process); the registered callables hold their own state.
[[nodiscard]] std::unique_ptr<app::role> make_inventory_role(app::role_context& ctx);

}  // namespace shopd::inventory
