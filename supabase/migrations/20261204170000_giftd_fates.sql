-- giftd schema version 10: two more ways an item leaves the deposit account, each with its own
-- status and ledger kind.
--
-- Applied after 20261204160000_giftd_values.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- `sold`: the account's collectible left through an accepted purchase offer (Telegram's own
-- outgoing messageActionStarGiftUnique with `from_offer` for it). `burned`: it was used up by
-- crafting (`starGiftUnique.burned`, or its id reused by the crafted collectible). Both are
-- terminal, like `gone`, which stays what an unexplained disappearance gives.

alter table public.inventory drop constraint if exists inventory_status_check;
alter table public.inventory add constraint inventory_status_check check (status in ('held',
  'withdraw_requested', 'withdrawing', 'withdrawn', 'converted', 'refunded', 'upgraded', 'sold',
  'burned', 'gone'));

alter table public.transactions drop constraint transactions_kind_check;
alter table public.transactions add constraint transactions_kind_check check (kind in (
  'deposit', 'withdraw_requested', 'withdraw_cancelled', 'withdraw_started', 'withdraw_sending',
  'withdraw_unknown', 'withdraw_deferred', 'withdraw_approved', 'withdraw_failed', 'withdrawn',
  'converted', 'refunded', 'refunded_after_resend', 'upgraded', 'sold', 'burned', 'gone',
  'assigned', 'attributed'));

-- Mirror of `gift::Status::transition`.
create or replace function giftd_private.legal_transition(p_from text, p_to text)
returns boolean
language sql immutable set search_path = '' as $$
  select (p_from, p_to) in (
      ('held', 'withdraw_requested'),
      ('withdraw_requested', 'withdrawing'), ('withdraw_requested', 'held'),
      ('withdrawing', 'withdrawn'), ('withdrawing', 'held'),
      ('withdrawing', 'withdraw_requested'),
      ('withdrawn', 'refunded'))
    or (p_from in ('held', 'withdraw_requested', 'withdrawing')
        and p_to in ('converted', 'refunded', 'upgraded', 'sold', 'burned', 'gone'))
$$;

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (10, '20261204170000_giftd_fates')) as v (version, migration);
