-- A Tavari-like application schema (calls, messages, invoices) the way it sits on Supabase:
-- foreign keys to auth.users, row-level security through auth.uid(), an enum, a view, a function.
CREATE TYPE public.call_status AS ENUM ('ringing', 'answered', 'missed', 'voicemail');

CREATE TABLE public.businesses (
  id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(),
  owner_id uuid NOT NULL REFERENCES auth.users (id),
  name text NOT NULL,
  settings jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.call_sessions (
  id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(),
  business_id uuid NOT NULL REFERENCES public.businesses (id),
  caller text NOT NULL,
  status public.call_status NOT NULL,
  started_at timestamptz NOT NULL,
  duration_seconds integer,
  transcript text
);
CREATE TABLE public.messages (
  id bigserial PRIMARY KEY,
  business_id uuid NOT NULL REFERENCES public.businesses (id),
  direction text NOT NULL CHECK (direction IN ('in', 'out')),
  body text NOT NULL,
  sent_at timestamptz NOT NULL
);
CREATE TABLE public.usage (
  business_id uuid NOT NULL REFERENCES public.businesses (id),
  period date NOT NULL,
  minutes numeric(12, 2) NOT NULL,
  PRIMARY KEY (business_id, period)
);
CREATE TABLE public.invoices (
  id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(),
  business_id uuid NOT NULL REFERENCES public.businesses (id),
  number text NOT NULL UNIQUE,
  amount numeric(12, 2) NOT NULL,
  currency char(3) NOT NULL DEFAULT 'EUR',
  pdf_key text,
  issued_at timestamptz NOT NULL
);
CREATE TABLE public.support_tickets (
  id bigserial PRIMARY KEY,
  business_id uuid NOT NULL REFERENCES public.businesses (id),
  subject text NOT NULL,
  body text NOT NULL,
  attachment bytea,
  status text NOT NULL DEFAULT 'open',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON public.messages (business_id, sent_at);
CREATE INDEX ON public.call_sessions (business_id, started_at);

CREATE VIEW public.business_summary AS
  SELECT b.id, b.name, count(DISTINCT c.id) AS calls, count(DISTINCT i.id) AS invoices
  FROM public.businesses b
  LEFT JOIN public.call_sessions c ON c.business_id = b.id
  LEFT JOIN public.invoices i ON i.business_id = b.id
  GROUP BY b.id, b.name;

CREATE FUNCTION public.invoice_total(business uuid) RETURNS numeric LANGUAGE sql STABLE AS
  $$ SELECT coalesce(sum(amount), 0) FROM public.invoices WHERE business_id = business $$;

ALTER TABLE public.businesses ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.call_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.invoices ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_reads ON public.businesses FOR SELECT TO authenticated USING (owner_id = auth.uid());
CREATE POLICY owner_calls ON public.call_sessions FOR SELECT TO authenticated
  USING (business_id IN (SELECT id FROM public.businesses WHERE owner_id = auth.uid()));
CREATE POLICY owner_messages ON public.messages FOR SELECT TO authenticated
  USING (business_id IN (SELECT id FROM public.businesses WHERE owner_id = auth.uid()));
CREATE POLICY owner_invoices ON public.invoices FOR SELECT TO authenticated
  USING (business_id IN (SELECT id FROM public.businesses WHERE owner_id = auth.uid()));
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
