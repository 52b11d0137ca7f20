-- OFFER-HUB orchestrator schema: every table, enum, constraint, trigger and SQL function.
--
-- Applied whole, in one transaction, by `offerhub migrate` (ledger/schema.py), which records
-- the SHA-256 of this file in offerhub_schema and refuses to run against an unknown version.
-- Every constraint is named: the name is how a database error becomes a domain error
-- (ledger/db.py). Functions carry a version suffix (_v1) so that old and new code can run side
-- by side during a migration.

CREATE TABLE offerhub_schema (
    singleton boolean NOT NULL DEFAULT true,
    version text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT offerhub_schema_pkey PRIMARY KEY (singleton),
    CONSTRAINT offerhub_schema_single_row CHECK (singleton)
);

-- Shared guard: refuses the statement it fires for. Used to make ledger history append-only.
CREATE FUNCTION offerhub_refuse_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: %', tg_op, tg_table_name, tg_argv[1]
        USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = tg_argv[0];
END;
$$;

--------------------------------------------------------------------------------------------------
-- Tenants
--------------------------------------------------------------------------------------------------

CREATE TABLE marketplaces (
    id text NOT NULL,
    name text NOT NULL,
    -- Platform fee charged by the escrow contract on every payout, in basis points.
    platform_fee_bps integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT marketplaces_pkey PRIMARY KEY (id),
    CONSTRAINT marketplaces_name_key UNIQUE (name),
    CONSTRAINT marketplaces_id_format CHECK (id ~ '^mkt_[0-9A-Za-z]{32}$'),
    CONSTRAINT marketplaces_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    -- The contract accepts at most 99 % and the Trustless Work fee (0.3 %) must still fit.
    CONSTRAINT marketplaces_platform_fee_bps_range CHECK (platform_fee_bps BETWEEN 0 AND 9900)
);

--------------------------------------------------------------------------------------------------
-- Ledger (TigerBeetle semantics): accounts with four counters, append-only transfers, entries
--------------------------------------------------------------------------------------------------

CREATE TYPE ledger_account_type AS ENUM (
    'USER',        -- a user's wallet balance
    'ESCROW',      -- funds locked in one order's escrow contract
    'FEES',        -- fee income (platform) or fees paid (trustless_work)
    'CLEARING',    -- money in flight to or from a provider; returns to zero per item
    'TREASURY',    -- platform-held liquidity (treasury wallet, Airtm enterprise balance)
    'EXTERNAL',    -- the outside world: the mirror image of money that entered
    'ADJUSTMENT'   -- counter-account of audited manual corrections
);

CREATE TYPE ledger_side AS ENUM ('DEBIT', 'CREDIT');

CREATE TYPE ledger_transfer_phase AS ENUM (
    'SINGLE',          -- posted at once
    'PENDING',         -- reserves the amount; later posted, voided or expired
    'POST_PENDING',    -- posts all or part of a pending transfer; the rest is released
    'VOID_PENDING',    -- releases a pending transfer
    'EXPIRE_PENDING'   -- releases a pending transfer whose timeout passed
);

CREATE TABLE ledger_accounts (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    code text NOT NULL,
    asset text NOT NULL,
    type ledger_account_type NOT NULL,
    normal_side ledger_side NOT NULL,
    debits_must_not_exceed_credits boolean NOT NULL DEFAULT false,
    credits_must_not_exceed_debits boolean NOT NULL DEFAULT false,
    debits_pending bigint NOT NULL DEFAULT 0,
    debits_posted bigint NOT NULL DEFAULT 0,
    credits_pending bigint NOT NULL DEFAULT 0,
    credits_posted bigint NOT NULL DEFAULT 0,
    -- Number of entries written for this account; the version of its latest entry.
    version bigint NOT NULL DEFAULT 0,
    user_id text,
    order_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_accounts_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT ledger_accounts_code_key UNIQUE (marketplace_id, asset, code),
    CONSTRAINT ledger_accounts_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT ledger_accounts_id_format CHECK (id ~ '^acc_[0-9A-Za-z]{32}$'),
    CONSTRAINT ledger_accounts_code_format CHECK (code ~ '^[a-z_]{1,20}:[A-Za-z0-9_]{1,64}$'),
    CONSTRAINT ledger_accounts_asset_format CHECK (asset ~ '^[A-Z][A-Z0-9]{2,11}$'),
    CONSTRAINT ledger_accounts_counters_non_negative CHECK (
        debits_pending >= 0 AND debits_posted >= 0
        AND credits_pending >= 0 AND credits_posted >= 0 AND version >= 0
    ),
    CONSTRAINT ledger_accounts_flags_exclusive CHECK (
        NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)
    ),
    -- The balance bounds. Checked on every counter update, which holds the row lock.
    CONSTRAINT ledger_accounts_debits_within_credits CHECK (
        NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted
    ),
    CONSTRAINT ledger_accounts_credits_within_debits CHECK (
        NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted
    )
) WITH (fillfactor = 70);  -- room on each page so counter updates stay HOT (no index churn)

CREATE TABLE ledger_transfers (
    marketplace_id text NOT NULL,
    -- Chosen by the caller: the transfer's idempotency key.
    id text NOT NULL,
    -- Commit-independent global order of insertion; entries and statements sort on it.
    sequence bigint GENERATED ALWAYS AS IDENTITY,
    debit_account_id text NOT NULL,
    credit_account_id text NOT NULL,
    asset text NOT NULL,
    amount bigint NOT NULL,
    phase ledger_transfer_phase NOT NULL,
    pending_id text,
    timeout_s integer NOT NULL DEFAULT 0,
    expires_at timestamptz,
    -- Why the transfer happened (deposit, order_reserve, escrow_release, ...).
    code text NOT NULL,
    -- Transfers committed all-or-nothing share a group id (the id of the chain's first one).
    linked_group text,
    order_id text,
    user_id text,
    external_ref text,
    description text,
    created_at timestamptz NOT NULL,
    CONSTRAINT ledger_transfers_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT ledger_transfers_id_format CHECK (id ~ '^trf_[0-9A-Za-z]{32}$'),
    CONSTRAINT ledger_transfers_amount_positive CHECK (amount > 0),
    CONSTRAINT ledger_transfers_accounts_differ CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT ledger_transfers_pending_reference CHECK (
        (pending_id IS NOT NULL) = (phase IN ('POST_PENDING', 'VOID_PENDING', 'EXPIRE_PENDING'))
    ),
    CONSTRAINT ledger_transfers_timeout CHECK (
        timeout_s >= 0
        AND (timeout_s = 0 OR phase = 'PENDING')
        AND (expires_at IS NOT NULL) = (timeout_s > 0)
    ),
    CONSTRAINT ledger_transfers_code_format CHECK (code ~ '^[a-z_]{1,40}$'),
    CONSTRAINT ledger_transfers_description_length CHECK (char_length(description) <= 500)
);

-- A pending transfer is posted, voided or expired at most once.
CREATE UNIQUE INDEX ledger_transfers_pending_resolved_once
    ON ledger_transfers (marketplace_id, pending_id) WHERE pending_id IS NOT NULL;
-- Finds timed pending transfers to expire.
CREATE INDEX ledger_transfers_expiry ON ledger_transfers (expires_at) WHERE expires_at IS NOT NULL;
-- Transfers list oldest first per marketplace.
CREATE INDEX ledger_transfers_by_sequence ON ledger_transfers (marketplace_id, sequence);

-- One row per transfer side: the account's four counters right after the transfer applied.
CREATE TABLE ledger_entries (
    marketplace_id text NOT NULL,
    account_id text NOT NULL,
    version bigint NOT NULL,
    transfer_id text NOT NULL,
    transfer_sequence bigint NOT NULL,
    side ledger_side NOT NULL,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT ledger_entries_pkey PRIMARY KEY (marketplace_id, account_id, version)
);

-- Balance at a time: the latest entry at or before it (created_at grows with version per account,
-- because entries are written under the account's row lock).
CREATE INDEX ledger_entries_by_time ON ledger_entries (marketplace_id, account_id, created_at);

-- Applies inserted transfers to the account counters and writes their entries, once per statement,
-- netted per account. This trigger is the only way counters move, so every posting is two-sided and
-- the books balance by construction; the checks below make direct SQL obey the same rules.
-- plan_cache_mode: a plan cached for a one-transfer statement must not be reused for a batch of
-- thousands (measured: a batch after many single postings ran 15x slower on a generic plan).
CREATE FUNCTION ledger_apply_transfers_v1() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    accounts_expected bigint;
    accounts_updated bigint;
BEGIN
    -- Lookups of ledger_transfers are LATERAL key lookups (LIMIT 1 keeps the planner from
    -- flattening them into a join) so that they stay index scans even when statistics lag
    -- behind a fast-growing table.
    IF EXISTS (
        SELECT 1
        FROM new_transfers AS t
        LEFT JOIN LATERAL (
            SELECT q.id, q.phase, q.sequence, q.debit_account_id, q.credit_account_id, q.asset,
                q.amount, q.expires_at
            FROM ledger_transfers AS q
            WHERE q.marketplace_id = t.marketplace_id AND q.id = t.pending_id
            LIMIT 1
        ) AS p ON true
        WHERE t.pending_id IS NOT NULL AND (
            p.id IS NULL
            OR p.phase <> 'PENDING'
            OR p.sequence >= t.sequence
            OR p.debit_account_id <> t.debit_account_id
            OR p.credit_account_id <> t.credit_account_id
            OR p.asset <> t.asset
            OR (t.phase = 'POST_PENDING' AND t.amount > p.amount)
            OR (t.phase <> 'POST_PENDING' AND t.amount <> p.amount)
            OR (t.phase <> 'EXPIRE_PENDING' AND t.created_at >= p.expires_at)
            OR (t.phase = 'EXPIRE_PENDING' AND (p.expires_at IS NULL OR t.created_at < p.expires_at))
        )
    ) THEN
        RAISE EXCEPTION 'a post, void or expiry does not match its pending transfer'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transfers_pending_consistent';
    END IF;

    -- Checked before the counters move, so a missing account is reported as such and not as
    -- the unbalanced update it would otherwise cause.
    IF EXISTS (
        SELECT 1
        FROM new_transfers AS t
        CROSS JOIN LATERAL (VALUES (t.debit_account_id), (t.credit_account_id)) AS leg (account_id)
        LEFT JOIN LATERAL (
            SELECT a.asset FROM ledger_accounts AS a
            WHERE a.marketplace_id = t.marketplace_id AND a.id = leg.account_id
            LIMIT 1
        ) AS account ON true
        WHERE account.asset IS DISTINCT FROM t.asset
    ) THEN
        RAISE EXCEPTION 'a transfer names an account that does not exist in its marketplace and asset'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_transfers_accounts_exist';
    END IF;

    -- History is written at posting time: a transfer may not be dated before its transaction
    -- began or after now, so entries stay in time order per account and balance_at holds.
    IF EXISTS (
        SELECT 1 FROM new_transfers AS t
        WHERE t.created_at < transaction_timestamp() OR t.created_at > clock_timestamp()
    ) THEN
        RAISE EXCEPTION 'a transfer must be dated within its own transaction'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transfers_dated_now';
    END IF;

    WITH legs AS (
        SELECT
            t.marketplace_id, t.asset, t.sequence, t.id AS transfer_id, t.created_at,
            leg.account_id, leg.side,
            leg.debits_pending, leg.debits_posted, leg.credits_pending, leg.credits_posted
        FROM new_transfers AS t
        LEFT JOIN LATERAL (
            SELECT q.amount FROM ledger_transfers AS q
            WHERE q.marketplace_id = t.marketplace_id AND q.id = t.pending_id
            LIMIT 1
        ) AS p ON true
        CROSS JOIN LATERAL (
            SELECT
                CASE t.phase WHEN 'PENDING' THEN t.amount WHEN 'SINGLE' THEN 0
                    ELSE -p.amount END AS pending_delta,
                CASE WHEN t.phase IN ('SINGLE', 'POST_PENDING') THEN t.amount
                    ELSE 0 END AS posted_delta
        ) AS delta
        CROSS JOIN LATERAL (VALUES
            (t.debit_account_id, 'DEBIT'::ledger_side,
                delta.pending_delta, delta.posted_delta, 0::bigint, 0::bigint),
            (t.credit_account_id, 'CREDIT'::ledger_side,
                0::bigint, 0::bigint, delta.pending_delta, delta.posted_delta)
        ) AS leg (
            account_id, side, debits_pending, debits_posted, credits_pending, credits_posted
        )
    ),
    totals AS (
        SELECT
            marketplace_id, account_id, asset, count(*) AS entry_count,
            sum(debits_pending)::bigint AS debits_pending,
            sum(debits_posted)::bigint AS debits_posted,
            sum(credits_pending)::bigint AS credits_pending,
            sum(credits_posted)::bigint AS credits_posted
        FROM legs
        GROUP BY marketplace_id, account_id, asset
    ),
    updated AS (
        UPDATE ledger_accounts AS a SET
            debits_pending = a.debits_pending + totals.debits_pending,
            debits_posted = a.debits_posted + totals.debits_posted,
            credits_pending = a.credits_pending + totals.credits_pending,
            credits_posted = a.credits_posted + totals.credits_posted,
            version = a.version + totals.entry_count
        FROM totals
        WHERE a.marketplace_id = totals.marketplace_id
            AND a.id = totals.account_id
            AND a.asset = totals.asset
        RETURNING
            a.marketplace_id, a.id, a.version,
            a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted
    ),
    written AS (
        -- Counters after each entry = final counters minus the deltas of the later entries.
        INSERT INTO ledger_entries (
            marketplace_id, account_id, version, transfer_id, transfer_sequence, side,
            debits_pending, debits_posted, credits_pending, credits_posted, created_at
        )
        SELECT
            l.marketplace_id, l.account_id,
            u.version - count(*) OVER whole + row_number() OVER running,
            l.transfer_id, l.sequence, l.side,
            u.debits_pending - sum(l.debits_pending) OVER whole
                + sum(l.debits_pending) OVER running,
            u.debits_posted - sum(l.debits_posted) OVER whole
                + sum(l.debits_posted) OVER running,
            u.credits_pending - sum(l.credits_pending) OVER whole
                + sum(l.credits_pending) OVER running,
            u.credits_posted - sum(l.credits_posted) OVER whole
                + sum(l.credits_posted) OVER running,
            l.created_at
        FROM legs AS l
        JOIN updated AS u ON u.marketplace_id = l.marketplace_id AND u.id = l.account_id
        WINDOW
            whole AS (PARTITION BY l.marketplace_id, l.account_id),
            running AS (
                PARTITION BY l.marketplace_id, l.account_id
                ORDER BY l.sequence ROWS UNBOUNDED PRECEDING
            )
    )
    SELECT (SELECT count(*) FROM totals), (SELECT count(*) FROM updated)
    INTO accounts_expected, accounts_updated;

    IF accounts_updated <> accounts_expected THEN
        RAISE EXCEPTION 'a transfer names an account that does not exist in its marketplace and asset'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_transfers_accounts_exist';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER ledger_transfers_apply
    AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_transfers_v1();

-- Defence in depth: whatever updates the counters, each statement must move debits and credits by
-- the same total per marketplace and asset, pending and posted separately.
CREATE FUNCTION ledger_check_zero_sum_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM old_accounts AS o
        JOIN new_accounts AS n ON n.marketplace_id = o.marketplace_id AND n.id = o.id
        GROUP BY n.marketplace_id, n.asset
        HAVING sum(n.debits_pending - o.debits_pending) <> sum(n.credits_pending - o.credits_pending)
            OR sum(n.debits_posted - o.debits_posted) <> sum(n.credits_posted - o.credits_posted)
    ) THEN
        RAISE EXCEPTION 'debits and credits no longer sum to the same total'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_zero_sum';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER ledger_accounts_zero_sum
    AFTER UPDATE ON ledger_accounts
    REFERENCING OLD TABLE AS old_accounts NEW TABLE AS new_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_zero_sum_v1();

-- Accounts open at zero; afterwards only ledger_apply_transfers_v1 changes them.
CREATE FUNCTION ledger_check_account_opens_at_zero_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.debits_pending <> 0 OR NEW.debits_posted <> 0 OR NEW.credits_pending <> 0
        OR NEW.credits_posted <> 0 OR NEW.version <> 0 THEN
        RAISE EXCEPTION 'an account must open with zero counters'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_accounts_open_at_zero';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ledger_accounts_open_at_zero
    BEFORE INSERT ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_check_account_opens_at_zero_v1();

-- pg_trigger_depth() is 0 for a statement sent by a client and 1 inside the apply trigger.
CREATE TRIGGER ledger_accounts_updated_only_by_transfers
    BEFORE UPDATE ON ledger_accounts
    FOR EACH STATEMENT WHEN (pg_trigger_depth() < 1)
    EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_accounts_updated_only_by_transfers', 'counters move only by inserting transfers'
    );

CREATE TRIGGER ledger_accounts_no_delete
    BEFORE DELETE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_accounts_no_delete', 'accounts are never deleted'
    );

-- TRUNCATE skips DELETE triggers; this also covers TRUNCATE marketplaces CASCADE.
CREATE TRIGGER ledger_accounts_no_truncate
    BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_accounts_no_delete', 'accounts are never deleted'
    );

CREATE TRIGGER ledger_transfers_append_only
    BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_transfers_append_only', 'transfers are append-only; post a correcting transfer'
    );

CREATE TRIGGER ledger_transfers_no_truncate
    BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_transfers_append_only', 'transfers are append-only'
    );

CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_entries_append_only', 'balance history is append-only'
    );

CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_entries_append_only', 'balance history is append-only'
    );

CREATE TRIGGER ledger_entries_written_only_by_transfers
    BEFORE INSERT ON ledger_entries
    FOR EACH STATEMENT WHEN (pg_trigger_depth() < 1)
    EXECUTE FUNCTION offerhub_refuse_v1(
        'ledger_entries_written_only_by_transfers', 'entries are written by posting transfers'
    );

-- Locks the accounts a batch touches, in (marketplace, id) order so concurrent batches never
-- deadlock, then loads the transfers the batch names. The second query runs after the locks are
-- held and so sees every transfer committed by a batch we waited for. Every lookup is a LATERAL
-- key lookup, locked one row at a time in the order of the sorted key list.
CREATE FUNCTION ledger_lock_and_load_v1(
    account_marketplace_ids text[],
    account_ids text[],
    transfer_marketplace_ids text[],
    transfer_ids text[]
) RETURNS TABLE (
    kind text,
    marketplace_id text,
    id text,
    asset text,
    debits_pending bigint,
    debits_posted bigint,
    credits_pending bigint,
    credits_posted bigint,
    debits_must_not_exceed_credits boolean,
    credits_must_not_exceed_debits boolean,
    debit_account_id text,
    credit_account_id text,
    amount bigint,
    phase ledger_transfer_phase,
    pending_id text,
    timeout_s integer,
    expires_at timestamptz,
    code text,
    order_id text,
    user_id text,
    external_ref text,
    description text,
    resolution ledger_transfer_phase,
    now timestamptz
)
-- Custom plans per call, as in ledger_apply_transfers_v1: a plan cached from small batches made
-- later batches of 1,000 three times slower on the same connection (measured).
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY
    WITH pending_accounts AS (
        SELECT p.marketplace_id, unnest(ARRAY[p.debit_account_id, p.credit_account_id]) AS id
        FROM unnest(transfer_marketplace_ids, transfer_ids) AS w (marketplace_id, id)
        CROSS JOIN LATERAL (
            SELECT q.marketplace_id, q.debit_account_id, q.credit_account_id
            FROM ledger_transfers AS q
            WHERE q.marketplace_id = w.marketplace_id AND q.id = w.id AND q.phase = 'PENDING'
            LIMIT 1
        ) AS p
    ),
    wanted AS MATERIALIZED (
        SELECT DISTINCT k.marketplace_id, k.id
        FROM (
            SELECT * FROM unnest(account_marketplace_ids, account_ids) AS g (marketplace_id, id)
            UNION ALL
            SELECT * FROM pending_accounts
        ) AS k
        ORDER BY k.marketplace_id, k.id
    )
    SELECT 'account', a.marketplace_id, a.id, a.asset,
        a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
        a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits,
        NULL::text, NULL::text, NULL::bigint, NULL::ledger_transfer_phase, NULL::text,
        NULL::integer, NULL::timestamptz, NULL::text, NULL::text, NULL::text, NULL::text,
        NULL::text, NULL::ledger_transfer_phase, clock_timestamp()
    FROM wanted AS w
    CROSS JOIN LATERAL (
        SELECT q.* FROM ledger_accounts AS q
        WHERE q.marketplace_id = w.marketplace_id AND q.id = w.id
        LIMIT 1
        FOR UPDATE
    ) AS a;

    RETURN QUERY
    SELECT 'transfer', t.marketplace_id, t.id, t.asset,
        NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::boolean, NULL::boolean,
        t.debit_account_id, t.credit_account_id, t.amount, t.phase, t.pending_id, t.timeout_s,
        t.expires_at, t.code, t.order_id, t.user_id, t.external_ref, t.description,
        r.phase, clock_timestamp()
    FROM unnest(transfer_marketplace_ids, transfer_ids) AS w (marketplace_id, id)
    CROSS JOIN LATERAL (
        SELECT q.* FROM ledger_transfers AS q
        WHERE q.marketplace_id = w.marketplace_id AND q.id = w.id
        LIMIT 1
    ) AS t
    LEFT JOIN LATERAL (
        SELECT q.phase FROM ledger_transfers AS q
        WHERE q.marketplace_id = t.marketplace_id AND q.pending_id = t.id
        LIMIT 1
    ) AS r ON true;
END;
$$;

-- Every (marketplace, asset) whose accounts do not sum to zero; empty when the books balance.
CREATE FUNCTION ledger_zero_sum_violations_v1()
RETURNS TABLE (marketplace_id text, asset text, pending_difference numeric, posted_difference numeric)
LANGUAGE sql STABLE AS $$
    SELECT a.marketplace_id, a.asset,
        sum(a.debits_pending) - sum(a.credits_pending),
        sum(a.debits_posted) - sum(a.credits_posted)
    FROM ledger_accounts AS a
    GROUP BY a.marketplace_id, a.asset
    HAVING sum(a.debits_pending) <> sum(a.credits_pending)
        OR sum(a.debits_posted) <> sum(a.credits_posted);
$$;

--------------------------------------------------------------------------------------------------
-- Durable operations: multi-step provider actions run by workers (design.md 5), the Stellar
-- transactions they submitted (hash committed before the submit call), and invisible wallets
--------------------------------------------------------------------------------------------------

CREATE TYPE operation_kind AS ENUM (
    'WALLET_ACTIVATE',
    'ESCROW_CREATE',
    'ESCROW_FUND',
    'RELEASE',
    'REFUND',
    'DISPUTE_RESOLVE',
    'WITHDRAWAL_PAYMENT',
    'AIRTM_PAYOUT',
    'TOPUP_DELIVERY'
);

CREATE TYPE operation_status AS ENUM ('RUNNING', 'SUCCEEDED', 'FAILED');

CREATE TYPE operation_submission_status AS ENUM (
    'PENDING',    -- hash committed; submitted or about to be; outcome not known yet
    'CONFIRMED',  -- found on chain and successful
    'FAILED',     -- definitively refused or failed on chain (result_codes say why)
    'EXPIRED'     -- not found after max_time: it can never land
);

-- A user's invisible Stellar wallet. The seed is sealed (providers/stellar/wallet_keys.py) and
-- bound to (marketplace_id, id, public_key) by the cipher's associated data.
CREATE TABLE wallets (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    user_id text NOT NULL,
    public_key text NOT NULL,
    sealed_secret text NOT NULL,
    key_version integer NOT NULL,
    is_active boolean NOT NULL DEFAULT false,
    funded boolean NOT NULL DEFAULT false,
    trustline_ready boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wallets_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT wallets_marketplace_fkey FOREIGN KEY (marketplace_id) REFERENCES marketplaces (id),
    CONSTRAINT wallets_user_key UNIQUE (marketplace_id, user_id),
    CONSTRAINT wallets_public_key_key UNIQUE (public_key),
    CONSTRAINT wallets_id_format CHECK (id ~ '^wal_[0-9A-Za-z]{32}$'),
    CONSTRAINT wallets_public_key_format CHECK (public_key ~ '^G[A-Z2-7]{55}$'),
    CONSTRAINT wallets_key_version_positive CHECK (key_version > 0),
    -- The sealed form names its master-key version; both must agree for rotation to find rows.
    CONSTRAINT wallets_sealed_secret_version CHECK (
        sealed_secret LIKE 'v' || key_version::text || ':%'
    ),
    CONSTRAINT wallets_active_needs_funds_and_trustline CHECK (
        NOT is_active OR (funded AND trustline_ready)
    )
);

-- One multi-step provider action. `step`/`step_index` name the next step to run; a worker
-- claims a due row (next_attempt_at <= now()) and pushes next_attempt_at out as its lease.
CREATE TABLE operations (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    kind operation_kind NOT NULL,
    status operation_status NOT NULL DEFAULT 'RUNNING',
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    step text NOT NULL,
    step_index integer NOT NULL DEFAULT 0,
    -- Claims of the current step; with step_index, the fencing token of a claim.
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT operations_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT operations_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT operations_id_format CHECK (id ~ '^op_[0-9A-Za-z]{32}$'),
    CONSTRAINT operations_step_index_non_negative CHECK (step_index >= 0),
    CONSTRAINT operations_attempts_non_negative CHECK (attempts >= 0),
    CONSTRAINT operations_step_format CHECK (step ~ '^[a-z_]{1,64}$'),
    CONSTRAINT operations_resource_type_format CHECK (resource_type ~ '^[a-z_]{1,40}$'),
    CONSTRAINT operations_payload_object CHECK (jsonb_typeof(payload) = 'object')
);

-- The claim query: due RUNNING rows, oldest due first.
CREATE INDEX operations_due ON operations (next_attempt_at) WHERE status = 'RUNNING';
-- At most one running operation of a kind per resource (a second request joins the first).
CREATE UNIQUE INDEX operations_one_running_per_resource
    ON operations (marketplace_id, kind, resource_type, resource_id) WHERE status = 'RUNNING';

-- One row per Stellar transaction an operation signed. The row (hash, envelope, max_time) is
-- committed BEFORE the submit call, so an ambiguous outcome is settled by a hash lookup.
CREATE TABLE operation_submissions (
    marketplace_id text NOT NULL,
    operation_id text NOT NULL,
    step text NOT NULL,
    step_index integer NOT NULL,
    tx_hash text NOT NULL,
    envelope_xdr text NOT NULL,
    -- The tx's time-bound upper limit: after it (chain time), a missing hash can never land.
    max_time timestamptz NOT NULL,
    source_account text NOT NULL,
    sequence bigint NOT NULL,
    status operation_submission_status NOT NULL DEFAULT 'PENDING',
    result_codes jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    settled_at timestamptz,
    CONSTRAINT operation_submissions_pkey PRIMARY KEY (tx_hash),
    CONSTRAINT operation_submissions_operation_fkey FOREIGN KEY (marketplace_id, operation_id)
        REFERENCES operations (marketplace_id, id),
    CONSTRAINT operation_submissions_tx_hash_format CHECK (tx_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT operation_submissions_source_format CHECK (source_account ~ '^G[A-Z2-7]{55}$'),
    CONSTRAINT operation_submissions_settled CHECK ((status = 'PENDING') = (settled_at IS NULL))
);

-- An operation has at most one transaction in flight.
CREATE UNIQUE INDEX operation_submissions_one_pending_per_operation
    ON operation_submissions (marketplace_id, operation_id) WHERE status = 'PENDING';
-- The per-source-account lock of providers.md 2.7: one in-flight tx per source account across
-- every process, held from the commit of the hash until a definitive outcome (survives crashes).
CREATE UNIQUE INDEX operation_submissions_one_pending_per_source
    ON operation_submissions (source_account) WHERE status = 'PENDING';
-- Submissions of an operation, newest last.
CREATE INDEX operation_submissions_by_operation
    ON operation_submissions (marketplace_id, operation_id, created_at);

--------------------------------------------------------------------------------------------------
-- Domain events (transactional outbox) and state transitions
--------------------------------------------------------------------------------------------------

-- Every state change writes its event here in the transaction of the change (api.md 6.1), so
-- an event exists if and only if its change committed. The sequence is shared by all
-- marketplaces; writer_xid lets a reader hold back events of transactions still in flight.
CREATE TABLE events (
    sequence bigint GENERATED ALWAYS AS IDENTITY,
    id text NOT NULL,
    marketplace_id text NOT NULL,
    type text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    data jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    writer_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_pkey PRIMARY KEY (sequence),
    CONSTRAINT events_id_key UNIQUE (id),
    CONSTRAINT events_marketplace_fkey FOREIGN KEY (marketplace_id) REFERENCES marketplaces (id),
    CONSTRAINT events_id_format CHECK (id ~ '^evt_[0-9A-Za-z]{32}$'),
    CONSTRAINT events_type_format CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    CONSTRAINT events_resource_type_format CHECK (resource_type ~ '^[a-z_]{1,40}$'),
    CONSTRAINT events_data_object CHECK (jsonb_typeof(data) = 'object')
);

-- A marketplace's stream and a resource's history, in sequence order.
CREATE INDEX events_by_marketplace ON events (marketplace_id, sequence);
CREATE INDEX events_by_resource ON events (marketplace_id, resource_id, sequence);

-- One row per state-machine transition of any resource (design.md 3): who fired which event.
CREATE TABLE state_transitions (
    id bigint GENERATED ALWAYS AS IDENTITY,
    marketplace_id text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    from_status text NOT NULL,
    to_status text NOT NULL,
    event text NOT NULL,
    actor_type text NOT NULL,
    actor_id text,
    request_id text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT state_transitions_pkey PRIMARY KEY (id),
    CONSTRAINT state_transitions_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT state_transitions_actor_type CHECK (
        actor_type IN ('API_KEY', 'MASTER_KEY', 'PROVIDER', 'SYSTEM')
    )
);

CREATE INDEX state_transitions_by_resource
    ON state_transitions (marketplace_id, resource_id, id);

CREATE FUNCTION refuse_history_change_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only';
END;
$$;

-- Events may be deleted by the retention purge (api.md 3.9), never changed.
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change_v1();
CREATE TRIGGER state_transitions_append_only BEFORE UPDATE OR DELETE ON state_transitions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change_v1();

--------------------------------------------------------------------------------------------------
-- Users (api.md 3.3)
--------------------------------------------------------------------------------------------------

CREATE TABLE users (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    external_user_id text NOT NULL,
    email text,
    type text NOT NULL DEFAULT 'BOTH',
    status text NOT NULL DEFAULT 'ACTIVE',
    airtm_user_id text,
    airtm_email text,
    airtm_linked_at timestamptz,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT users_marketplace_fkey FOREIGN KEY (marketplace_id) REFERENCES marketplaces (id),
    -- POST /users is idempotent on external_user_id within a marketplace.
    CONSTRAINT users_external_user_id_key UNIQUE (marketplace_id, external_user_id),
    CONSTRAINT users_id_format CHECK (id ~ '^usr_[0-9A-Za-z]{32}$'),
    CONSTRAINT users_external_user_id_length CHECK (char_length(external_user_id) BETWEEN 1 AND 255),
    CONSTRAINT users_email_length CHECK (char_length(email) <= 254),
    CONSTRAINT users_type_values CHECK (type IN ('BUYER', 'SELLER', 'BOTH')),
    CONSTRAINT users_status_values CHECK (status IN ('ACTIVE', 'SUSPENDED', 'PENDING_VERIFICATION')),
    CONSTRAINT users_metadata_object CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object'),
    CONSTRAINT users_airtm_link_complete CHECK (
        (airtm_user_id IS NULL) = (airtm_linked_at IS NULL)
    )
);

CREATE INDEX users_by_created ON users (marketplace_id, created_at DESC, id DESC);

--------------------------------------------------------------------------------------------------
-- API keys and idempotency records (api core)
--------------------------------------------------------------------------------------------------

-- Marketplaces list newest first (GET /marketplaces, master key).
CREATE INDEX marketplaces_by_created ON marketplaces (created_at DESC, id DESC);

-- API keys `ohk_<env>_<id>_<secret>` (api.md 1.2): only a salted SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    scopes text[] NOT NULL,
    salt bytea NOT NULL,
    hash bytea NOT NULL,
    status text NOT NULL DEFAULT 'ACTIVE',
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Written at most once a minute per key, so authentication rarely writes.
    last_used_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT api_keys_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT api_keys_marketplace_fkey FOREIGN KEY (marketplace_id) REFERENCES marketplaces (id),
    CONSTRAINT api_keys_id_format CHECK (id ~ '^key_[0-9A-Za-z]{32}$'),
    CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT api_keys_scopes_values CHECK (
        cardinality(scopes) BETWEEN 1 AND 4
        AND scopes <@ ARRAY['read', 'write', 'support', 'admin']::text[]
    ),
    CONSTRAINT api_keys_salt_length CHECK (octet_length(salt) = 16),
    CONSTRAINT api_keys_hash_length CHECK (octet_length(hash) = 32),
    CONSTRAINT api_keys_status_values CHECK (status IN ('ACTIVE', 'REVOKED')),
    CONSTRAINT api_keys_revoked_at_set CHECK ((status = 'REVOKED') = (revoked_at IS NOT NULL))
);

-- Authentication finds a key by its id alone (the key text names no marketplace); ids are random
-- 190-bit values, so a plain index suffices and the table can still be distributed by tenant.
CREATE INDEX api_keys_by_id ON api_keys (id);
CREATE INDEX api_keys_by_created ON api_keys (marketplace_id, created_at DESC, id DESC);

-- Idempotency records (api.md 1.8), one per (namespace, key); the namespace is the marketplace id,
-- or 'master' for master-key requests. A request first commits an IN_FLIGHT row holding a lease
-- (claim, locked_until); its effect and the DONE row (the reply to replay) commit together.
CREATE TABLE idempotency_keys (
    namespace text NOT NULL,
    key text NOT NULL,
    -- SHA-256 (hex) of method, canonical route path and the canonical body's SHA-256.
    fingerprint text NOT NULL,
    status text NOT NULL DEFAULT 'IN_FLIGHT',
    -- Token of the request holding the lease; a request whose lease was taken over may not finish.
    claim text,
    locked_until timestamptz,
    -- The effect committed but the reply is not stored yet (a long-running operation is awaited).
    effect_committed boolean NOT NULL DEFAULT false,
    response_status integer,
    response_body bytea,
    response_location text,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (namespace, key),
    CONSTRAINT idempotency_keys_namespace_format CHECK (
        namespace = 'master' OR namespace ~ '^mkt_[0-9A-Za-z]{32}$'
    ),
    CONSTRAINT idempotency_keys_key_format CHECK (key ~ '^[ -~]{1,255}$'),
    CONSTRAINT idempotency_keys_fingerprint_format CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    CONSTRAINT idempotency_keys_status_values CHECK (status IN ('IN_FLIGHT', 'DONE')),
    CONSTRAINT idempotency_keys_in_flight_leased CHECK (
        status <> 'IN_FLIGHT' OR (claim IS NOT NULL AND locked_until IS NOT NULL)
    ),
    CONSTRAINT idempotency_keys_done_has_reply CHECK (
        status <> 'DONE'
        OR (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL)
    ),
    -- Only 2xx and the post-validation 404/409/422 are ever stored.
    CONSTRAINT idempotency_keys_response_status_stored CHECK (
        response_status IS NULL
        OR response_status BETWEEN 200 AND 299
        OR response_status IN (404, 409, 422)
    )
);

-- The retention purge deletes expired records oldest first.
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

--------------------------------------------------------------------------------------------------
-- Orders, milestones, escrows and disputes
--------------------------------------------------------------------------------------------------

-- An order between a buyer and a seller (api.md 3.5, 5.1). Status labels are those of
-- statemachines.status.OrderStatus; flows.transitions.fire is the only writer of `status`.
-- close_reason/closed_at are written right after the transition into CLOSED, in its transaction.
CREATE TABLE orders (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    client_order_ref text,
    buyer_id text NOT NULL,
    seller_id text NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL DEFAULT 'USD',
    status text NOT NULL DEFAULT 'ORDER_CREATED',
    close_reason text,
    title text NOT NULL,
    description text,
    metadata jsonb,
    -- The PENDING ledger transfer user:<buyer> -> escrow:<order> written by reserve.
    reserve_transfer_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    CONSTRAINT orders_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT orders_marketplace_fkey FOREIGN KEY (marketplace_id) REFERENCES marketplaces (id),
    CONSTRAINT orders_buyer_fkey FOREIGN KEY (marketplace_id, buyer_id)
        REFERENCES users (marketplace_id, id),
    CONSTRAINT orders_seller_fkey FOREIGN KEY (marketplace_id, seller_id)
        REFERENCES users (marketplace_id, id),
    CONSTRAINT orders_reserve_transfer_fkey FOREIGN KEY (marketplace_id, reserve_transfer_id)
        REFERENCES ledger_transfers (marketplace_id, id),
    CONSTRAINT orders_id_format CHECK (id ~ '^ord_[0-9A-Za-z]{32}$'),
    CONSTRAINT orders_buyer_is_not_seller CHECK (buyer_id <> seller_id),
    CONSTRAINT orders_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT orders_currency_values CHECK (currency = 'USD'),
    CONSTRAINT orders_status_values CHECK (status IN (
        'ORDER_CREATED', 'FUNDS_RESERVED', 'ESCROW_CREATING', 'ESCROW_FUNDING', 'ESCROW_FUNDED',
        'IN_PROGRESS', 'RELEASE_REQUESTED', 'REFUND_REQUESTED', 'DISPUTED', 'RELEASED',
        'REFUNDED', 'CLOSED'
    )),
    CONSTRAINT orders_close_reason_values CHECK (
        close_reason IN ('CANCELED', 'RELEASED', 'REFUNDED', 'SPLIT')
    ),
    -- Only a closed order has a reason and a time of closing.
    CONSTRAINT orders_close_reason_when_closed CHECK (close_reason IS NULL OR status = 'CLOSED'),
    CONSTRAINT orders_closed_at_when_closed CHECK (closed_at IS NULL OR status = 'CLOSED'),
    CONSTRAINT orders_client_order_ref_length CHECK (
        char_length(client_order_ref) BETWEEN 1 AND 100
    ),
    CONSTRAINT orders_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT orders_description_length CHECK (char_length(description) <= 2000),
    CONSTRAINT orders_metadata_object CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object')
);

-- client_order_ref is unique per marketplace when given (ORDER_ALREADY_EXISTS).
CREATE UNIQUE INDEX orders_client_order_ref_key
    ON orders (marketplace_id, client_order_ref) WHERE client_order_ref IS NOT NULL;
-- Lists: newest first, overall and per party (api.md 1.4).
CREATE INDEX orders_by_created ON orders (marketplace_id, created_at DESC, id DESC);
CREATE INDEX orders_by_buyer ON orders (marketplace_id, buyer_id, created_at DESC, id DESC);
CREATE INDEX orders_by_seller ON orders (marketplace_id, seller_id, created_at DESC, id DESC);

-- A deliverable of an order, created with it (api.md 5.3).
CREATE TABLE milestones (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    order_id text NOT NULL,
    milestone_ref text NOT NULL,
    title text NOT NULL,
    amount_minor bigint NOT NULL,
    status text NOT NULL DEFAULT 'OPEN',
    -- Creation order within the order (0-based); the on-chain milestone index.
    position integer NOT NULL,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT milestones_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT milestones_order_fkey FOREIGN KEY (marketplace_id, order_id)
        REFERENCES orders (marketplace_id, id),
    CONSTRAINT milestones_ref_key UNIQUE (marketplace_id, order_id, milestone_ref),
    CONSTRAINT milestones_position_key UNIQUE (marketplace_id, order_id, position),
    CONSTRAINT milestones_id_format CHECK (id ~ '^ms_[0-9A-Za-z]{32}$'),
    CONSTRAINT milestones_ref_format CHECK (milestone_ref ~ '^[A-Za-z0-9._-]{1,64}$'),
    CONSTRAINT milestones_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT milestones_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT milestones_status_values CHECK (status IN ('OPEN', 'COMPLETED')),
    CONSTRAINT milestones_position_range CHECK (position BETWEEN 0 AND 49),
    CONSTRAINT milestones_completed_at_when_completed CHECK (
        completed_at IS NULL OR status = 'COMPLETED'
    )
);

-- The Trustless Work contract behind an order (api.md 5.2). A rejected deploy leaves a FAILED
-- row and the order may create a new one, so an order has at most one non-FAILED escrow.
CREATE TABLE escrows (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    order_id text NOT NULL,
    status text NOT NULL DEFAULT 'CREATING',
    amount_minor bigint NOT NULL,
    currency text NOT NULL DEFAULT 'USD',
    contract_id text,
    platform_fee_bps integer NOT NULL,
    trustless_work_fee_bps integer NOT NULL DEFAULT 30,
    funding_transaction_hash text,
    -- Payout objects (api.md 4) with integer minor amounts, filled at release/refund/resolution.
    payouts jsonb NOT NULL DEFAULT '[]',
    funded_at timestamptz,
    released_at timestamptz,
    refunded_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT escrows_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT escrows_order_fkey FOREIGN KEY (marketplace_id, order_id)
        REFERENCES orders (marketplace_id, id),
    CONSTRAINT escrows_id_format CHECK (id ~ '^esc_[0-9A-Za-z]{32}$'),
    CONSTRAINT escrows_status_values CHECK (status IN (
        'CREATING', 'CREATED', 'FUNDING', 'FUNDED', 'RELEASING', 'REFUNDING', 'DISPUTED',
        'RELEASED', 'REFUNDED', 'FAILED'
    )),
    CONSTRAINT escrows_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT escrows_currency_values CHECK (currency = 'USD'),
    CONSTRAINT escrows_contract_id_format CHECK (contract_id ~ '^C[A-Z2-7]{55}$'),
    -- Every status past the deploy names its contract (written before the transition).
    CONSTRAINT escrows_deployed_has_contract CHECK (
        status IN ('CREATING', 'FAILED') OR contract_id IS NOT NULL
    ),
    CONSTRAINT escrows_platform_fee_bps_range CHECK (platform_fee_bps BETWEEN 0 AND 9900),
    CONSTRAINT escrows_trustless_work_fee_bps_range CHECK (
        trustless_work_fee_bps BETWEEN 0 AND 10000
    ),
    CONSTRAINT escrows_payouts_array CHECK (jsonb_typeof(payouts) = 'array'),
    CONSTRAINT escrows_funding_hash_format CHECK (funding_transaction_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT escrows_released_at_when_released CHECK (released_at IS NULL OR status = 'RELEASED'),
    CONSTRAINT escrows_refunded_at_when_refunded CHECK (refunded_at IS NULL OR status = 'REFUNDED')
);

CREATE UNIQUE INDEX escrows_one_live_per_order
    ON escrows (marketplace_id, order_id) WHERE status <> 'FAILED';
-- The latest escrow of an order.
CREATE INDEX escrows_by_order ON escrows (marketplace_id, order_id, created_at DESC);

-- A dispute on an IN_PROGRESS order (api.md 3.6, 5.4). The decision is recorded when resolve
-- is accepted; the dispute becomes RESOLVED when the on-chain distribution is confirmed.
CREATE TABLE disputes (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    order_id text NOT NULL,
    status text NOT NULL DEFAULT 'OPEN',
    opened_by text NOT NULL,
    reason text NOT NULL,
    description text,
    evidence text[] NOT NULL DEFAULT '{}',
    assigned_to text,
    resolution_decision text,
    -- Gross amounts to the seller and to the buyer; both set with the decision.
    release_amount_minor bigint,
    refund_amount_minor bigint,
    decision_note text,
    resolved_by text,
    resolved_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT disputes_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT disputes_order_fkey FOREIGN KEY (marketplace_id, order_id)
        REFERENCES orders (marketplace_id, id),
    CONSTRAINT disputes_id_format CHECK (id ~ '^dsp_[0-9A-Za-z]{32}$'),
    CONSTRAINT disputes_status_values CHECK (status IN ('OPEN', 'UNDER_REVIEW', 'RESOLVED')),
    CONSTRAINT disputes_opened_by_values CHECK (opened_by IN ('BUYER', 'SELLER')),
    CONSTRAINT disputes_reason_values CHECK (reason IN ('NOT_DELIVERED', 'QUALITY_ISSUE', 'OTHER')),
    CONSTRAINT disputes_description_length CHECK (char_length(description) <= 2000),
    CONSTRAINT disputes_evidence_count CHECK (cardinality(evidence) <= 20),
    CONSTRAINT disputes_assigned_to_length CHECK (char_length(assigned_to) BETWEEN 1 AND 255),
    CONSTRAINT disputes_decision_values CHECK (
        resolution_decision IN ('FULL_RELEASE', 'FULL_REFUND', 'SPLIT')
    ),
    CONSTRAINT disputes_decision_amounts CHECK (
        (resolution_decision IS NULL) = (release_amount_minor IS NULL)
        AND (resolution_decision IS NULL) = (refund_amount_minor IS NULL)
    ),
    CONSTRAINT disputes_amounts_non_negative CHECK (
        release_amount_minor >= 0 AND refund_amount_minor >= 0
    ),
    CONSTRAINT disputes_decision_note_length CHECK (char_length(decision_note) <= 2000),
    CONSTRAINT disputes_resolved_has_decision CHECK (
        status <> 'RESOLVED' OR resolution_decision IS NOT NULL
    ),
    CONSTRAINT disputes_resolved_at_when_resolved CHECK (resolved_at IS NULL OR status = 'RESOLVED')
);

CREATE UNIQUE INDEX disputes_one_unresolved_per_order
    ON disputes (marketplace_id, order_id) WHERE status <> 'RESOLVED';
CREATE INDEX disputes_by_created ON disputes (marketplace_id, created_at DESC, id DESC);
CREATE INDEX disputes_by_order ON disputes (marketplace_id, order_id, created_at DESC);

-- The latest operation of an order (Order.operation): the operations table has no index by
-- resource outside the running-only unique index.
CREATE INDEX operations_by_order
    ON operations (marketplace_id, resource_id, created_at DESC) WHERE resource_type = 'order';

--------------------------------------------------------------------------------------------------
-- Withdrawals
--------------------------------------------------------------------------------------------------

-- A payout of a user's balance to a Stellar address (crypto) or an Airtm account (api.md 3.8).
-- The hold (PENDING user -> clearing:withdrawals) is placed in the transaction that inserts the
-- row; completion posts it, failure or cancel voids it (flows/withdrawals.py).
CREATE TABLE withdrawals (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    user_id text NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL DEFAULT 'USD',
    status text NOT NULL DEFAULT 'WITHDRAWAL_CREATED',
    destination_type text NOT NULL,
    -- crypto: the G... address; airtm_balance: the recipient's Airtm email.
    destination_ref text NOT NULL,
    memo text,
    committed boolean NOT NULL DEFAULT false,
    hold_transfer_id text NOT NULL,
    airtm_payout_id text,
    transaction_hash text,
    failure_code text,
    failure_reason text,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CONSTRAINT withdrawals_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT withdrawals_user_fkey FOREIGN KEY (marketplace_id, user_id)
        REFERENCES users (marketplace_id, id),
    CONSTRAINT withdrawals_hold_transfer_key UNIQUE (marketplace_id, hold_transfer_id),
    CONSTRAINT withdrawals_id_format CHECK (id ~ '^wd_[0-9A-Za-z]{32}$'),
    CONSTRAINT withdrawals_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT withdrawals_currency_values CHECK (currency = 'USD'),
    CONSTRAINT withdrawals_status_values CHECK (status IN (
        'WITHDRAWAL_CREATED', 'WITHDRAWAL_COMMITTED', 'WITHDRAWAL_PENDING',
        'WITHDRAWAL_PENDING_USER_ACTION', 'WITHDRAWAL_COMPLETED', 'WITHDRAWAL_FAILED',
        'WITHDRAWAL_CANCELED'
    )),
    CONSTRAINT withdrawals_destination_type_values CHECK (
        destination_type IN ('crypto', 'airtm_balance')
    ),
    CONSTRAINT withdrawals_destination_ref_format CHECK (
        (destination_type = 'crypto' AND destination_ref ~ '^G[A-Z2-7]{55}$')
        OR (destination_type = 'airtm_balance' AND char_length(destination_ref) BETWEEN 3 AND 254)
    ),
    -- Stellar text memos carry at most 28 bytes; Airtm payouts have no memo.
    CONSTRAINT withdrawals_memo_crypto_only CHECK (
        memo IS NULL OR (destination_type = 'crypto' AND octet_length(memo) <= 28)
    ),
    -- Not committed yet means still CREATED, or ended from there (cancel, rejected creation).
    CONSTRAINT withdrawals_committed_status CHECK (
        committed OR status IN ('WITHDRAWAL_CREATED', 'WITHDRAWAL_FAILED', 'WITHDRAWAL_CANCELED')
    ),
    CONSTRAINT withdrawals_hold_transfer_format CHECK (hold_transfer_id ~ '^trf_[0-9A-Za-z]{32}$'),
    CONSTRAINT withdrawals_airtm_payout_airtm_only CHECK (
        airtm_payout_id IS NULL OR destination_type = 'airtm_balance'
    ),
    CONSTRAINT withdrawals_transaction_hash_format CHECK (
        transaction_hash IS NULL
        OR (destination_type = 'crypto' AND transaction_hash ~ '^[0-9a-f]{64}$')
    ),
    CONSTRAINT withdrawals_failure_when_ended CHECK (
        (failure_code IS NULL AND failure_reason IS NULL)
        OR status IN ('WITHDRAWAL_FAILED', 'WITHDRAWAL_CANCELED')
    ),
    CONSTRAINT withdrawals_failure_reason_length CHECK (char_length(failure_reason) <= 1000),
    CONSTRAINT withdrawals_description_length CHECK (char_length(description) <= 255),
    -- completed_at is the time of WITHDRAWAL_COMPLETED (set right after that transition).
    CONSTRAINT withdrawals_completed_at_when_completed CHECK (
        completed_at IS NULL OR status = 'WITHDRAWAL_COMPLETED'
    )
);

-- GET /withdrawals: newest first per marketplace, and per user.
CREATE INDEX withdrawals_by_created ON withdrawals (marketplace_id, created_at DESC, id DESC);
CREATE INDEX withdrawals_by_user
    ON withdrawals (marketplace_id, user_id, created_at DESC, id DESC);
-- Airtm webhooks name a payout by its id or its code (= our id) and carry no marketplace.
CREATE UNIQUE INDEX withdrawals_airtm_payout_key
    ON withdrawals (airtm_payout_id) WHERE airtm_payout_id IS NOT NULL;
CREATE INDEX withdrawals_by_id ON withdrawals (id);

--------------------------------------------------------------------------------------------------
-- Top-ups
--------------------------------------------------------------------------------------------------

-- A fiat top-up through an Airtm payin (api.md 3.7, 5.5). The row is written before the payin is
-- created at Airtm (its `code` is the top-up id). Confirmation credits the user once
-- (credit_transfer_id); a TOPUP_DELIVERY operation then pays the same USDC from the treasury
-- wallet to the user's wallet (delivery_tx_hash, delivered_at). flows/topups.py has the postings.
CREATE TABLE topups (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    user_id text NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL DEFAULT 'USD',
    status text NOT NULL DEFAULT 'TOPUP_CREATED',
    confirmation_uri text,
    return_url text NOT NULL,
    cancel_url text NOT NULL,
    description text,
    airtm_payin_id text,
    -- The last payin status Airtm reported, as sent; kept even when the news was ignored.
    airtm_status text,
    -- Airtm's fee on the payin, borne by the platform (the user is credited amount_minor).
    provider_fee_minor bigint,
    failure_code text,
    failure_reason text,
    expires_at timestamptz,
    metadata jsonb,
    -- The ledger transfer that credited the user (clearing:topups -> user), once SUCCEEDED.
    credit_transfer_id text,
    -- The on-chain treasury -> user payment, once confirmed.
    delivery_tx_hash text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CONSTRAINT topups_pkey PRIMARY KEY (marketplace_id, id),
    -- Ids are globally unique: inbound Airtm webhooks carry the code (= id) but no marketplace.
    CONSTRAINT topups_id_key UNIQUE (id),
    CONSTRAINT topups_user_fkey FOREIGN KEY (marketplace_id, user_id)
        REFERENCES users (marketplace_id, id),
    CONSTRAINT topups_id_format CHECK (id ~ '^topup_[0-9A-Za-z]{32}$'),
    CONSTRAINT topups_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT topups_currency_values CHECK (currency = 'USD'),
    CONSTRAINT topups_status_values CHECK (status IN (
        'TOPUP_CREATED', 'TOPUP_AWAITING_USER_CONFIRMATION', 'TOPUP_PROCESSING',
        'TOPUP_SUCCEEDED', 'TOPUP_FAILED', 'TOPUP_CANCELED'
    )),
    CONSTRAINT topups_url_length CHECK (
        char_length(return_url) BETWEEN 1 AND 2048 AND char_length(cancel_url) BETWEEN 1 AND 2048
    ),
    CONSTRAINT topups_description_length CHECK (char_length(description) <= 255),
    CONSTRAINT topups_provider_fee_non_negative CHECK (provider_fee_minor >= 0),
    CONSTRAINT topups_metadata_object CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object'),
    -- Past TOPUP_CREATED a payin exists, except when its creation failed or it was canceled.
    CONSTRAINT topups_payin_known CHECK (
        airtm_payin_id IS NOT NULL
        OR status IN ('TOPUP_CREATED', 'TOPUP_FAILED', 'TOPUP_CANCELED')
    ),
    -- One-way checks: the flow fires the status change first, then stamps these fields.
    CONSTRAINT topups_completed_when_final CHECK (
        completed_at IS NULL OR status IN ('TOPUP_SUCCEEDED', 'TOPUP_FAILED', 'TOPUP_CANCELED')
    ),
    CONSTRAINT topups_credited_when_succeeded CHECK (
        credit_transfer_id IS NULL OR status = 'TOPUP_SUCCEEDED'
    ),
    CONSTRAINT topups_delivered_when_credited CHECK (
        delivered_at IS NULL OR credit_transfer_id IS NOT NULL
    ),
    CONSTRAINT topups_delivery_complete CHECK ((delivery_tx_hash IS NULL) = (delivered_at IS NULL))
);

-- Listing, newest first (api.md 1.4), per marketplace and per user.
CREATE INDEX topups_by_created ON topups (marketplace_id, created_at DESC, id DESC);
CREATE INDEX topups_by_user ON topups (marketplace_id, user_id, created_at DESC, id DESC);
-- Inbound webhooks and reconciliation find a top-up by its payin.
CREATE UNIQUE INDEX topups_airtm_payin_id_key ON topups (airtm_payin_id)
    WHERE airtm_payin_id IS NOT NULL;
-- Credited but not yet delivered on chain: the user's ledger balance is ahead of the wallet.
CREATE INDEX topups_undelivered ON topups (marketplace_id, user_id)
    WHERE credit_transfer_id IS NOT NULL AND delivered_at IS NULL;

--------------------------------------------------------------------------------------------------
-- Event stream (SSE): notification and retention
--------------------------------------------------------------------------------------------------

-- Readers deliver an event only once every lower sequence is final (flows/event_stream.py). The
-- proof needs each writer to hold its transaction id before its sequence is drawn; the identity
-- default is evaluated before writer_xid's default, so the sequence is drawn again here, after
-- pg_current_xact_id(). Sequences stay strictly increasing, just not contiguous.
CREATE FUNCTION events_sequence_after_xid_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.writer_xid := pg_current_xact_id();
    NEW.sequence := nextval('events_sequence_seq');
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_sequence_after_xid BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_sequence_after_xid_v1();

-- Wakes SSE streams (api/event_hub.py): one notification per marketplace per inserting
-- statement, payload the marketplace id. Postgres delivers notifications at commit and collapses
-- repeats within a transaction; a rolled-back insert notifies nobody.
CREATE FUNCTION events_notify_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offerhub_events', marketplace.marketplace_id)
    FROM (SELECT DISTINCT marketplace_id FROM inserted_events) AS marketplace;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify_v1();

-- Per marketplace, the highest sequence the retention purge deleted: a stream resuming below it
-- may have missed events, and says so first (`replay_truncated`, api.md 3.9).
CREATE TABLE event_purge_marks (
    marketplace_id text NOT NULL,
    purged_through bigint NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_purge_marks_pkey PRIMARY KEY (marketplace_id),
    CONSTRAINT event_purge_marks_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT event_purge_marks_positive CHECK (purged_through >= 1)
);

--------------------------------------------------------------------------------------------------
-- Outbound webhooks
--------------------------------------------------------------------------------------------------

-- A marketplace's webhook endpoint (api.md 3.10). Secrets are stored sealed with AES-256-GCM
-- (flows/webhooks.py), bound to (marketplace, endpoint) as associated data. During a rotation
-- grace period the previous secret also signs. DELETE keeps the row as DELETED (deliveries
-- refer to it) and wipes both secrets.
CREATE TABLE webhook_endpoints (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    url text NOT NULL,
    description text,
    -- Patterns as in the SSE `types` filter: exact names, `order.*` prefixes, or `*`.
    event_types text[] NOT NULL,
    status text NOT NULL DEFAULT 'ACTIVE',
    -- `v<key version>:<base64(nonce|ciphertext)>`; NULL only once DELETED.
    secret_sealed text,
    previous_secret_sealed text,
    previous_secret_expires_at timestamptz,
    secret_rotated_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    CONSTRAINT webhook_endpoints_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT webhook_endpoints_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT webhook_endpoints_id_format CHECK (id ~ '^whe_[0-9A-Za-z]{32}$'),
    CONSTRAINT webhook_endpoints_url_length CHECK (char_length(url) BETWEEN 1 AND 2048),
    CONSTRAINT webhook_endpoints_description_length CHECK (char_length(description) <= 255),
    CONSTRAINT webhook_endpoints_event_types_count CHECK (
        cardinality(event_types) BETWEEN 1 AND 100
    ),
    CONSTRAINT webhook_endpoints_status_values CHECK (status IN ('ACTIVE', 'DELETED')),
    CONSTRAINT webhook_endpoints_secret_when_active CHECK (
        (status = 'ACTIVE') = (secret_sealed IS NOT NULL)
    ),
    CONSTRAINT webhook_endpoints_deleted_at CHECK ((status = 'DELETED') = (deleted_at IS NOT NULL)),
    -- A previous secret exists only with the end of its grace period.
    CONSTRAINT webhook_endpoints_previous_secret_expiry CHECK (
        (previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL)
    )
);

-- Listing, newest first (api.md 1.4); the fan-out finds a marketplace's active endpoints.
CREATE INDEX webhook_endpoints_by_created
    ON webhook_endpoints (marketplace_id, created_at DESC, id DESC) WHERE status = 'ACTIVE';

-- One delivery of one event to one endpoint (plus manual redeliveries). PENDING until a 2xx
-- (SUCCEEDED), until 3 days after the first attempt (FAILED), or until the endpoint is
-- deleted (CANCELED). While PENDING, next_attempt_at is when a worker may claim it; a claim
-- pushes it out by a lease (flows/webhook_delivery.py). No foreign key to events: event
-- retention must stay free to purge old events, and a delivery whose event is gone fails.
CREATE TABLE webhook_deliveries (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    endpoint_id text NOT NULL,
    event_sequence bigint NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    -- Deliveries of one resource to one endpoint go out in sequence order.
    resource_id text NOT NULL,
    status text NOT NULL DEFAULT 'PENDING',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz DEFAULT now(),
    first_attempt_at timestamptz,
    last_attempt_at timestamptz,
    last_response_status integer,
    last_error text,
    redelivery_of text,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT webhook_deliveries_endpoint_fkey FOREIGN KEY (marketplace_id, endpoint_id)
        REFERENCES webhook_endpoints (marketplace_id, id),
    CONSTRAINT webhook_deliveries_redelivery_fkey FOREIGN KEY (marketplace_id, redelivery_of)
        REFERENCES webhook_deliveries (marketplace_id, id),
    CONSTRAINT webhook_deliveries_id_format CHECK (id ~ '^whd_[0-9A-Za-z]{32}$'),
    CONSTRAINT webhook_deliveries_status_values CHECK (
        status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELED')
    ),
    CONSTRAINT webhook_deliveries_attempts_non_negative CHECK (attempts >= 0),
    CONSTRAINT webhook_deliveries_due_when_pending CHECK (
        (status = 'PENDING') = (next_attempt_at IS NOT NULL)
    ),
    CONSTRAINT webhook_deliveries_completed_when_final CHECK (
        (status = 'PENDING') = (completed_at IS NULL)
    ),
    CONSTRAINT webhook_deliveries_error_length CHECK (char_length(last_error) <= 1000)
);

-- The claim query: due pending deliveries, oldest due first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'PENDING';
-- The ordering guard of the claim: an earlier pending delivery of the same resource and
-- endpoint holds the later ones back (redeliveries stand outside the order).
CREATE INDEX webhook_deliveries_pending_by_resource
    ON webhook_deliveries (marketplace_id, endpoint_id, resource_id, event_sequence)
    WHERE status = 'PENDING' AND redelivery_of IS NULL;
-- An endpoint's delivery log, newest first; the cancel-on-delete finds its pending ones.
CREATE INDEX webhook_deliveries_by_endpoint
    ON webhook_deliveries (marketplace_id, endpoint_id, created_at DESC, id DESC);
-- The fan-out writes one delivery per (event, endpoint); redeliveries are extra rows.
CREATE UNIQUE INDEX webhook_deliveries_one_per_event
    ON webhook_deliveries (marketplace_id, endpoint_id, event_sequence)
    WHERE redelivery_of IS NULL;

-- Every HTTP attempt of a delivery, in order: the delivery log's detail.
CREATE TABLE webhook_delivery_attempts (
    marketplace_id text NOT NULL,
    delivery_id text NOT NULL,
    attempt integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    response_status integer,
    error text,
    succeeded boolean NOT NULL,
    CONSTRAINT webhook_delivery_attempts_pkey PRIMARY KEY (marketplace_id, delivery_id, attempt),
    CONSTRAINT webhook_delivery_attempts_delivery_fkey FOREIGN KEY (marketplace_id, delivery_id)
        REFERENCES webhook_deliveries (marketplace_id, id),
    CONSTRAINT webhook_delivery_attempts_attempt_positive CHECK (attempt >= 1),
    CONSTRAINT webhook_delivery_attempts_duration CHECK (duration_ms >= 0),
    CONSTRAINT webhook_delivery_attempts_error_length CHECK (char_length(error) <= 1000)
);

-- A random `<prefix>` + 32 chars of [0-9A-Za-z] (ids made inside SQL, as by common/ids.py).
CREATE FUNCTION offerhub_webhook_delivery_id_v1() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'whd_' || string_agg(
        substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
               1 + get_byte(digest, position) % 62, 1),
        '' ORDER BY position)
    FROM (SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())) AS digest)
        AS random_bytes,
        generate_series(0, 31) AS position
$$;

-- Fan-out (design.md 6): in the event's own transaction, one delivery per ACTIVE endpoint of
-- the event's marketplace whose patterns match the type (`*`, exact, or `prefix.*`). An event
-- and its deliveries therefore commit together: nothing is lost in between. A NOTIFY (sent
-- at commit, collapsed per transaction) wakes the delivery workers.
CREATE FUNCTION webhook_fan_out_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (
        marketplace_id, id, endpoint_id, event_sequence, event_id, event_type, resource_id
    )
    SELECT NEW.marketplace_id, offerhub_webhook_delivery_id_v1(), endpoint.id, NEW.sequence,
        NEW.id, NEW.type, NEW.resource_id
    FROM webhook_endpoints AS endpoint
    WHERE endpoint.marketplace_id = NEW.marketplace_id
        AND endpoint.status = 'ACTIVE'
        AND EXISTS (
            SELECT 1 FROM unnest(endpoint.event_types) AS pattern
            WHERE pattern = '*' OR pattern = NEW.type
                OR (pattern LIKE '%.*' AND starts_with(NEW.type, left(pattern, -1)))
        );
    IF FOUND THEN
        PERFORM pg_notify('offerhub_webhook_deliveries', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_webhook_fan_out AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION webhook_fan_out_v1();

--------------------------------------------------------------------------------------------------
-- Inbound provider webhooks
--------------------------------------------------------------------------------------------------

-- One verified provider webhook (api.md 3.14), deduplicated by the provider's own event id
-- (`svix-id` for Airtm, `event_id` for Trustless Work): a repeat hits the unique key and is
-- answered 200 without a second row. `body` is the parsed request body (signatures and headers
-- are not kept). The resource it names is matched on receipt (`marketplace_id`, `resource_*`).
-- RECEIVED: stored, not processed yet; APPLIED: its news was applied to the resource; IGNORED:
-- nothing to apply (unknown type, no matching resource, final resource, stale news; `outcome`
-- says which); FAILED: processing failed (`error`), retried at next_attempt_at. next_attempt_at
-- is also the processing lease (flows/provider_events.py).
CREATE TABLE provider_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    provider text NOT NULL,
    provider_event_id text NOT NULL,
    type text NOT NULL,
    body jsonb NOT NULL,
    -- When the provider says it sent the event (svix-timestamp), if it says.
    sent_at timestamptz,
    marketplace_id text,
    resource_type text,
    resource_id text,
    status text NOT NULL DEFAULT 'RECEIVED',
    outcome text,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    error text,
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT provider_events_pkey PRIMARY KEY (id),
    CONSTRAINT provider_events_dedupe_key UNIQUE (provider, provider_event_id),
    CONSTRAINT provider_events_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT provider_events_provider_values CHECK (provider IN ('airtm', 'trustless_work')),
    CONSTRAINT provider_events_event_id_length CHECK (
        char_length(provider_event_id) BETWEEN 1 AND 255
    ),
    CONSTRAINT provider_events_type_length CHECK (char_length(type) BETWEEN 1 AND 255),
    CONSTRAINT provider_events_body_object CHECK (jsonb_typeof(body) = 'object'),
    CONSTRAINT provider_events_status_values CHECK (
        status IN ('RECEIVED', 'APPLIED', 'IGNORED', 'FAILED')
    ),
    CONSTRAINT provider_events_resource_complete CHECK (
        (resource_type IS NULL) = (resource_id IS NULL)
        AND (resource_id IS NULL OR marketplace_id IS NOT NULL)
    ),
    CONSTRAINT provider_events_attempts_non_negative CHECK (attempts >= 0),
    -- Done (APPLIED/IGNORED) exactly when processed_at is stamped.
    CONSTRAINT provider_events_processed_when_done CHECK (
        (processed_at IS NOT NULL) = (status IN ('APPLIED', 'IGNORED'))
    ),
    CONSTRAINT provider_events_error_when_failed CHECK (error IS NULL OR status = 'FAILED')
);

-- The retry loop's claim: unfinished events, oldest due first.
CREATE INDEX provider_events_due ON provider_events (next_attempt_at)
    WHERE status IN ('RECEIVED', 'FAILED');
-- A resource's provider news, in arrival order (reconciliation, support).
CREATE INDEX provider_events_by_resource
    ON provider_events (marketplace_id, resource_type, resource_id, received_at)
    WHERE resource_id IS NOT NULL;
-- Trustless Work webhooks name an escrow only by its contract id (and carry no marketplace).
CREATE INDEX escrows_by_contract_id ON escrows (contract_id) WHERE contract_id IS NOT NULL;

--------------------------------------------------------------------------------------------------
-- Deposit monitor
--------------------------------------------------------------------------------------------------

-- Where the deposit monitor stands in each active wallet's Horizon payments (providers.md 2.5):
-- the paging token of the last record handled, advanced in the transaction that credits the
-- page (flows/deposits.py), so a crash re-reads the page and nothing is missed or doubled.
-- polled_at/leased_until let several monitor processes share a pass (flows/deposit_monitor.py).
CREATE TABLE deposit_cursors (
    marketplace_id text NOT NULL,
    wallet_id text NOT NULL,
    -- NULL: from the account's first operation (never "now": that could skip a deposit).
    paging_token text,
    -- End of this wallet's last complete poll; a pass polls wallets polled before it began.
    polled_at timestamptz,
    -- A monitor is polling the wallet until then; expires by itself after a crash.
    leased_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deposit_cursors_pkey PRIMARY KEY (marketplace_id, wallet_id),
    CONSTRAINT deposit_cursors_wallet_fkey FOREIGN KEY (marketplace_id, wallet_id)
        REFERENCES wallets (marketplace_id, id),
    CONSTRAINT deposit_cursors_paging_token_format CHECK (paging_token ~ '^[0-9]{1,24}$')
);

-- The claim of a pass: wallets not polled since it began, least recently polled first.
CREATE INDEX deposit_cursors_by_polled ON deposit_cursors (polled_at NULLS FIRST);

-- One incoming USDC payment credited to a user (external:stellar -> user:<usr>, code deposit).
-- A Horizon operation is credited at most once, whoever finds it (the monitor, or
-- reconciliation with source stellar_deposit_reconciled); transfer_id is derived from it
-- (flows.deposits). Unique per marketplace like every tenant key (a wallet belongs to one
-- marketplace, so this is per chain operation), which also survives a testnet reset.
CREATE TABLE deposits (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    user_id text NOT NULL,
    wallet_id text NOT NULL,
    operation_id text NOT NULL,
    operation_type text NOT NULL,
    tx_hash text NOT NULL,
    from_address text,
    amount_minor bigint NOT NULL,
    asset_code text NOT NULL,
    asset_issuer text NOT NULL,
    transfer_id text NOT NULL,
    paging_token text NOT NULL,
    source text NOT NULL,
    -- When the operation's ledger closed (Horizon's created_at).
    occurred_at timestamptz NOT NULL,
    credited_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deposits_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT deposits_operation_id_key UNIQUE (marketplace_id, operation_id),
    CONSTRAINT deposits_wallet_fkey FOREIGN KEY (marketplace_id, wallet_id)
        REFERENCES wallets (marketplace_id, id),
    CONSTRAINT deposits_transfer_fkey FOREIGN KEY (marketplace_id, transfer_id)
        REFERENCES ledger_transfers (marketplace_id, id),
    CONSTRAINT deposits_id_format CHECK (id ~ '^dep_[0-9A-Za-z]{32}$'),
    CONSTRAINT deposits_operation_id_format CHECK (operation_id ~ '^[0-9]{1,24}$'),
    CONSTRAINT deposits_operation_type_values CHECK (operation_type IN (
        'payment', 'path_payment_strict_send', 'path_payment_strict_receive'
    )),
    CONSTRAINT deposits_tx_hash_format CHECK (tx_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT deposits_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT deposits_asset_code_usdc CHECK (asset_code = 'USDC'),
    CONSTRAINT deposits_source_values CHECK (
        source IN ('stellar_deposit', 'stellar_deposit_reconciled')
    )
);

-- A user's deposits, newest first; a transaction's deposits (reconciliation by hash).
CREATE INDEX deposits_by_user ON deposits (marketplace_id, user_id, credited_at DESC);
CREATE INDEX deposits_by_tx_hash ON deposits (tx_hash);

--------------------------------------------------------------------------------------------------
-- Audit log
--------------------------------------------------------------------------------------------------

-- One append-only, hash-chained log per marketplace (api.md 3.11, design.md 6). Code never writes
-- audit_log itself: flows.audit.record_audit validates and redacts an entry, hashes its canonical
-- content (entry_hash, defined in flows/audit.py) and inserts it into audit_pending, in the
-- transaction of the change. At COMMIT a deferred constraint trigger appends each pending entry
-- to its marketplace's chain: it locks the chain head, numbers the entry, stamps occurred_at,
-- chains the hash, inserts the audit_log row and deletes the pending one.
--
-- Concurrency trade-off: one total order per marketplace needs one lock per marketplace, and a
-- transaction holds it until it ends. Taking it at COMMIT (not at the first audited statement)
-- shrinks that window to the commit itself, so writers of one marketplace queue only behind each
-- other's commits; marketplaces never wait for each other. A rolled-back transaction leaves no
-- entry and no gap.
--
-- hash = lowercase hex SHA-256 of the UTF-8 text
--     prev_hash || E'\n' || chain_index || E'\n' || occurred_at || E'\n' || entry_hash
-- with chain_index in decimal and occurred_at in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ; the first
-- entry's prev_hash is 64 zeros. `offerhub audit verify` recomputes entry_hash and hash.

CREATE TABLE audit_chain_heads (
    marketplace_id text NOT NULL,
    last_index bigint NOT NULL DEFAULT 0,
    last_id text,
    last_hash text NOT NULL DEFAULT repeat('0', 64),
    last_occurred_at timestamptz,
    CONSTRAINT audit_chain_heads_pkey PRIMARY KEY (marketplace_id),
    CONSTRAINT audit_chain_heads_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT audit_chain_heads_last_index_range CHECK (last_index >= 0)
);

-- Entries of transactions still running; empty outside them (the commit trigger moves them).
CREATE TABLE audit_pending (
    sequence bigint GENERATED ALWAYS AS IDENTITY,
    marketplace_id text NOT NULL,
    id text NOT NULL,
    actor_type text NOT NULL,
    actor_id text,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    request_id text,
    summary jsonb NOT NULL,
    entry_hash text NOT NULL,
    CONSTRAINT audit_pending_pkey PRIMARY KEY (sequence),
    CONSTRAINT audit_pending_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT audit_pending_id_format CHECK (id ~ '^aud_[0-9A-Za-z]{32}$'),
    CONSTRAINT audit_pending_actor_type CHECK (
        actor_type IN ('API_KEY', 'MASTER_KEY', 'PROVIDER', 'SYSTEM')
    ),
    CONSTRAINT audit_pending_action_format CHECK (action ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    CONSTRAINT audit_pending_resource_type_format CHECK (resource_type ~ '^[a-z_]{1,40}$'),
    CONSTRAINT audit_pending_summary_object CHECK (jsonb_typeof(summary) = 'object'),
    CONSTRAINT audit_pending_entry_hash_format CHECK (entry_hash ~ '^[0-9a-f]{64}$')
);

CREATE TABLE audit_log (
    marketplace_id text NOT NULL,
    -- Position in the marketplace's chain: 1, 2, 3, ... without gaps.
    chain_index bigint NOT NULL,
    id text NOT NULL,
    -- Stamped at commit, never before the previous entry's: follows chain order.
    occurred_at timestamptz NOT NULL,
    actor_type text NOT NULL,
    actor_id text,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    request_id text,
    -- {before, after, idempotency_key, ip, user_agent}, redacted (flows/audit.py).
    summary jsonb NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (marketplace_id, chain_index),
    CONSTRAINT audit_log_id_key UNIQUE (marketplace_id, id),
    CONSTRAINT audit_log_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT audit_log_chain_index_range CHECK (chain_index >= 1),
    CONSTRAINT audit_log_id_format CHECK (id ~ '^aud_[0-9A-Za-z]{32}$'),
    CONSTRAINT audit_log_actor_type CHECK (
        actor_type IN ('API_KEY', 'MASTER_KEY', 'PROVIDER', 'SYSTEM')
    ),
    CONSTRAINT audit_log_action_format CHECK (action ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    CONSTRAINT audit_log_resource_type_format CHECK (resource_type ~ '^[a-z_]{1,40}$'),
    CONSTRAINT audit_log_summary_object CHECK (jsonb_typeof(summary) = 'object'),
    CONSTRAINT audit_log_prev_hash_format CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT audit_log_hash_format CHECK (hash ~ '^[0-9a-f]{64}$')
);

-- GET /audit/logs: newest first, and by resource or request.
CREATE INDEX audit_log_by_time ON audit_log (marketplace_id, occurred_at DESC, id DESC);
CREATE INDEX audit_log_by_resource ON audit_log (marketplace_id, resource_id, chain_index);
CREATE INDEX audit_log_by_request ON audit_log (marketplace_id, request_id)
    WHERE request_id IS NOT NULL;

-- The commit-time append of one pending entry (see the section comment).
CREATE FUNCTION audit_chain_append_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head audit_chain_heads%ROWTYPE;
    stamped timestamptz;
    chained text;
BEGIN
    SELECT * INTO head FROM audit_chain_heads
    WHERE marketplace_id = NEW.marketplace_id FOR UPDATE;
    IF NOT FOUND THEN
        -- The marketplace's first entry: a concurrent first writer may create the head too.
        INSERT INTO audit_chain_heads (marketplace_id) VALUES (NEW.marketplace_id)
        ON CONFLICT (marketplace_id) DO NOTHING;
        SELECT * INTO STRICT head FROM audit_chain_heads
        WHERE marketplace_id = NEW.marketplace_id FOR UPDATE;
    END IF;
    -- greatest() skips a NULL (no previous entry) and keeps time monotonic along the chain.
    stamped := greatest(clock_timestamp(), head.last_occurred_at);
    chained := encode(sha256(convert_to(
        head.last_hash || E'\n' || (head.last_index + 1)::text || E'\n'
        || to_char(stamped AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || E'\n'
        || NEW.entry_hash,
        'UTF8'
    )), 'hex');
    INSERT INTO audit_log (
        marketplace_id, chain_index, id, occurred_at, actor_type, actor_id, action,
        resource_type, resource_id, request_id, summary, prev_hash, hash
    ) VALUES (
        NEW.marketplace_id, head.last_index + 1, NEW.id, stamped, NEW.actor_type, NEW.actor_id,
        NEW.action, NEW.resource_type, NEW.resource_id, NEW.request_id, NEW.summary,
        head.last_hash, chained
    );
    UPDATE audit_chain_heads
    SET last_index = head.last_index + 1, last_id = NEW.id, last_hash = chained,
        last_occurred_at = stamped
    WHERE marketplace_id = NEW.marketplace_id;
    DELETE FROM audit_pending WHERE sequence = NEW.sequence;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER audit_pending_chain AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append_v1();

-- Append-only: no UPDATE, DELETE or TRUNCATE of entries; a chain head is never removed.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change_v1();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change_v1();
CREATE TRIGGER audit_chain_heads_kept BEFORE DELETE ON audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION offerhub_refuse_v1(
        'audit_chain_heads_kept', 'an audit chain head is never removed'
    );
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON audit_chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION offerhub_refuse_v1(
        'audit_chain_heads_kept', 'an audit chain head is never removed'
    );

--------------------------------------------------------------------------------------------------
-- Reconciliation
--------------------------------------------------------------------------------------------------

-- One reconciliation run of a marketplace (api.md 3.13, 4): RUNNING until it stores its items.
-- ledger_position is the last transfer sequence of the snapshot it read, stellar_ledger the
-- chain ledger it pinned; drift holds {currency, source, account_class, amount} (minor units).
-- claimed_at: when the process executing it took it; that process holds a session advisory lock
-- on the run id while it runs, so a claimed RUNNING run whose lock is free lost its process.
CREATE TABLE reconciliation_runs (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    status text NOT NULL DEFAULT 'RUNNING',
    trigger text NOT NULL,
    sources text[] NOT NULL,
    ledger_position bigint,
    ledger_as_of timestamptz NOT NULL DEFAULT now(),
    stellar_ledger bigint,
    items_checked integer NOT NULL DEFAULT 0,
    matched integer NOT NULL DEFAULT 0,
    discrepancies integer NOT NULL DEFAULT 0,
    drift jsonb NOT NULL DEFAULT '[]',
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_at timestamptz,
    finished_at timestamptz,
    CONSTRAINT reconciliation_runs_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT reconciliation_runs_marketplace_fkey FOREIGN KEY (marketplace_id)
        REFERENCES marketplaces (id),
    CONSTRAINT reconciliation_runs_id_format CHECK (id ~ '^rcn_[0-9A-Za-z]{32}$'),
    CONSTRAINT reconciliation_runs_status_values CHECK (
        status IN ('RUNNING', 'COMPLETED', 'FAILED')
    ),
    CONSTRAINT reconciliation_runs_trigger_values CHECK (trigger IN ('SCHEDULE', 'MANUAL')),
    CONSTRAINT reconciliation_runs_sources_values CHECK (
        cardinality(sources) BETWEEN 1 AND 4
        AND sources <@ ARRAY['ledger', 'stellar', 'trustless_work', 'airtm']::text[]
    ),
    CONSTRAINT reconciliation_runs_counts CHECK (
        items_checked >= 0 AND matched >= 0 AND discrepancies >= 0
        AND matched + discrepancies = items_checked
    ),
    CONSTRAINT reconciliation_runs_drift_array CHECK (jsonb_typeof(drift) = 'array'),
    CONSTRAINT reconciliation_runs_finished CHECK ((status = 'RUNNING') = (finished_at IS NULL))
);

-- One run at a time per marketplace (RECONCILIATION_ALREADY_RUNNING).
CREATE UNIQUE INDEX reconciliation_runs_one_running
    ON reconciliation_runs (marketplace_id) WHERE status = 'RUNNING';
-- Lists and /latest: newest first.
CREATE INDEX reconciliation_runs_by_created
    ON reconciliation_runs (marketplace_id, created_at DESC, id DESC);

-- One check of a run: MATCHED, or a break with both amounts (difference = ledger - external).
CREATE TABLE reconciliation_items (
    marketplace_id text NOT NULL,
    id text NOT NULL,
    run_id text NOT NULL,
    source text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    -- Bounded label of the drift gauges (user, escrow, platform, clearing, books, operation).
    account_class text NOT NULL,
    resource_type text,
    resource_id text,
    account_id text,
    external_ref text,
    ledger_amount bigint,
    external_amount bigint,
    difference bigint,
    detail text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reconciliation_items_pkey PRIMARY KEY (marketplace_id, id),
    CONSTRAINT reconciliation_items_run_fkey FOREIGN KEY (marketplace_id, run_id)
        REFERENCES reconciliation_runs (marketplace_id, id),
    CONSTRAINT reconciliation_items_id_format CHECK (id ~ '^rci_[0-9A-Za-z]{32}$'),
    CONSTRAINT reconciliation_items_source_values CHECK (
        source IN ('ledger', 'stellar', 'trustless_work', 'airtm')
    ),
    CONSTRAINT reconciliation_items_kind_format CHECK (kind ~ '^[A-Z_]{1,40}$'),
    CONSTRAINT reconciliation_items_status_values CHECK (
        status IN ('MATCHED', 'MISMATCH', 'MISSING_IN_LEDGER', 'MISSING_AT_PROVIDER')
    ),
    CONSTRAINT reconciliation_items_matched_no_difference CHECK (
        status <> 'MATCHED' OR coalesce(difference, 0) = 0
    ),
    CONSTRAINT reconciliation_items_detail_length CHECK (char_length(detail) <= 2000)
);

-- A run's items, newest first (api.md 1.4), filtered by status, kind and source.
CREATE INDEX reconciliation_items_by_run
    ON reconciliation_items (marketplace_id, run_id, created_at DESC, id DESC);
