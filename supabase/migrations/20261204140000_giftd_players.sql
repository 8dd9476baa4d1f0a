-- giftd schema version 8: the language the companion bot speaks to each player, and sending a
-- player the notifications they could not get before they started the bot.
--
-- Applied after 20261202010000_giftd_leases.sql, by `supabase db push` or
-- `psql -v ON_ERROR_STOP=1 -1 -f <this file>`; `giftd schema` prints it.
--
-- `players`: one row per player the bot has heard from, with Telegram's `lang_code` or the
-- language the player chose with /language (`lang_chosen`: Telegram's code no longer replaces
-- it). Only giftd (service_role) reads or writes it.
--
-- A notification the bot could not deliver because Telegram would not let it reach the player
-- (they had not started the bot) is `undeliverable` with error 'unreachable';
-- `giftd_requeue_notifications` puts a player's rows of that kind, no older than the age giftd
-- passes (`bot.undelivered_max_age`), back to `pending` when the player starts the bot.

create table public.players (
  user_id bigint primary key,
  lang text not null check (lang ~ '^[A-Za-z0-9_-]{1,35}$'),
  lang_chosen boolean not null default false,
  updated_at timestamptz not null default now()
);
alter table public.players enable row level security;
revoke all on public.players from public, anon, authenticated;
grant select, insert, update, delete on public.players to service_role;
-- No policy: only service_role (bypassrls) sees players.

-- A player's undelivered notifications, found without reading the others.
create index notifications_undeliverable on public.notifications (user_id, created_at)
  where state = 'undeliverable';

-- Records p_lang for p_user_id: a choice (p_chosen) always, Telegram's code unless the player
-- chose. Returns the language in effect.
create function public.giftd_note_language(p_user_id bigint, p_lang text, p_chosen boolean)
returns jsonb
language plpgsql volatile set search_path = '' as $$
declare
  p public.players;
begin
  insert into public.players (user_id, lang, lang_chosen)
  values (p_user_id, p_lang, p_chosen)
  on conflict (user_id) do update set lang = excluded.lang,
    lang_chosen = excluded.lang_chosen, updated_at = now()
  where excluded.lang_chosen or not public.players.lang_chosen;
  select * into p from public.players where user_id = p_user_id;
  return jsonb_build_object('code', p.lang, 'chosen', p.lang_chosen);
end
$$;

-- The language recorded for p_user_id, or null.
create function public.giftd_player_language(p_user_id bigint) returns jsonb
language sql stable set search_path = '' as $$
  select jsonb_build_object('code', p.lang, 'chosen', p.lang_chosen)
  from public.players p where p.user_id = p_user_id
$$;

-- Puts p_user_id's notifications that could not reach them, at most p_max_age_ms old, back to
-- pending. Returns how many.
create function public.giftd_requeue_notifications(p_user_id bigint, p_max_age_ms bigint)
returns bigint
language plpgsql volatile set search_path = '' as $$
declare
  v_n bigint;
begin
  update public.notifications set state = 'pending', error = null, finished_at = null,
    claimed_at = null, lease_until = null
  where user_id = p_user_id and state = 'undeliverable' and error = 'unreachable'
    and created_at >= now() - p_max_age_ms * interval '1 millisecond';
  get diagnostics v_n = row_count;
  return v_n;
end
$$;

-- Only giftd (service_role) may call the giftd_* functions.
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'public'::regnamespace and p.proname like 'giftd\_%'
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

update public.schema_version set version = v.version, migration = v.migration, applied_at = now()
from (values (8, '20261204140000_giftd_players')) as v (version, migration);
