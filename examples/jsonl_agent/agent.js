#!/usr/bin/env node
// A trialrun agent written in plain Node.js (no npm packages), speaking the JSON-lines
// protocol of docs/jsonl-protocol.md over stdin/stdout. It plays the built-in retail world:
// verify the customer, find the order, resolve the request as the store policy says, reply,
// finish. Run it under trialrun with
//
//   agent:
//     type: process
//     params: {command: [node, examples/jsonl_agent/agent.js]}
//
// stdout carries protocol messages only; debugging goes to stderr (JSONL_AGENT_DEBUG=1).
'use strict';

const readline = require('node:readline');

const PROTOCOL = 1;
const DEBUG = Boolean(process.env.JSONL_AGENT_DEBUG);

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

function debug(...args) {
  if (DEBUG) console.error('[jsonl_agent]', ...args);
}

function money(x) {
  return Number(x).toFixed(2);
}

// A tool call at a node of this agent's workflow. The nodes are the retail scripted agent's,
// so a scenario's node graders (e.g. `nodes: {resolve: ...}`) apply to this agent too.
function call(node, tool, args, confidence = 0.9) {
  return { kind: 'tool_call', node, tool, args, confidence };
}

class RetailAgent {
  constructor(start) {
    const data = (start.observation && start.observation.data) || {};
    this.tools = new Set(start.tools.map((t) => t.name));
    this.customer = data.customer || {};
    this.request = data.request || {};
    const policy = String(data.policy || '');
    const refund = policy.match(/within (\d+) days of delivery/);
    const exchange = policy.match(/delivered orders within (\d+) days/);
    this.windows = {
      refund: refund ? Number(refund[1]) : 30,
      exchange: exchange ? Number(exchange[1]) : 45,
    };
    this.phase = 'verify';
    this.verifyBy = this.customer.email ? 'email' : 'name';
    this.customerId = null;
    this.orderId = this.request.order_id || null;
    this.candidates = [];
    this.order = null;
    this.products = {};
    this.outcome = '';
    this.failures = 0;
  }

  decide() {
    switch (this.phase) {
      case 'verify':
        return this.verifyBy === 'email'
          ? call('verify_identity', 'find_customer', { email: this.customer.email })
          : call('verify_identity', 'find_customer',
            { name: this.customer.name, zip: this.customer.zip });
      case 'list':
        return call('lookup_order', 'list_orders', { customer_id: this.customerId });
      case 'clarify': {
        const ids = this.candidates.map((o) => o.order_id);
        const text = ids.length
          ? `The customer's request could mean orders ${ids.join(', ')}. Which one?`
          : 'Which order does the customer mean?';
        return { kind: 'ask_human', node: 'clarify', text, confidence: 0.5 };
      }
      case 'get':
        return call('lookup_order', 'get_order', { order_id: this.orderId });
      case 'search':
        return call('lookup_product', 'search_products', { query: '' });
      case 'resolve':
        return this.resolve();
      case 'reply':
        return call('reply', 'reply', { message: this.outcome });
      default:
        return { kind: 'finish', node: 'finish', text: 'resolved' };
    }
  }

  // The store policy (shown in the first observation), applied to the order read.
  resolve() {
    const o = this.order;
    const r = this.request;
    const days = o.days_since_delivery;
    const delivered = o.status === 'delivered' && days !== null && days !== undefined;
    let action = null;
    if (r.type === 'refund') {
      if (delivered && days <= this.windows.refund) {
        action = call('resolve', 'refund', { order_id: o.id, amount: o.total });
        this.outcome = `We refunded ${money(o.total)} to your card for order ${o.id}.`;
      } else if (delivered) {
        this.outcome = `Sorry, refunds are only possible within ${this.windows.refund} days ` +
          'of delivery.';
      } else {
        this.outcome = `Your order is ${o.status}; it has not been delivered, so it cannot ` +
          'be refunded.';
      }
    } else if (r.type === 'cancel') {
      if (o.status === 'pending' || o.status === 'processing') {
        action = call('resolve', 'cancel', { order_id: o.id });
        this.outcome = `Your order ${o.id} is cancelled.`;
      } else {
        this.outcome = 'That order cannot be cancelled; you can ask for a refund instead.';
      }
    } else if (r.type === 'exchange') {
      const item = o.items[0];
      const wanted = this.products[r.new_sku];
      if (delivered && days <= this.windows.exchange && wanted && wanted.in_stock &&
          wanted.price === item.price) {
        action = call('resolve', 'exchange',
          { order_id: o.id, sku: item.sku, new_sku: wanted.sku });
        this.outcome = `We will exchange it for the ${wanted.name}.`;
      } else {
        this.outcome = 'Sorry, we cannot exchange this order under our policy.';
      }
    } else {
      this.outcome = `Your order ${o.id} is ${o.status}.`;
    }
    this.phase = action ? 'resolve' : 'reply';
    return action || this.decide();
  }

  feedback(fb) {
    if (fb.denied) return; // a human said no at a checkpoint: decide again in this phase
    const d = fb.executed || fb.decision; // what ran: a human may have taken over
    const res = fb.result;
    if (d.kind === 'ask_human') {
      const m = /order (\S+?)\.?$/.exec(fb.human_answer || '');
      if (m) this.orderId = m[1];
      this.phase = this.orderId ? 'get' : 'reply';
      if (!this.orderId) this.outcome = 'Sorry, I could not tell which order you mean.';
      return;
    }
    if (d.kind !== 'tool_call' || !res) return;
    if (!res.ok) {
      debug(`${d.tool} failed: ${res.error}`);
      this.failures += 1;
      if (d.tool === 'find_customer' && this.verifyBy === 'email' && this.customer.zip) {
        this.verifyBy = 'name'; // try name and zip instead
      } else if (this.failures >= 3 || d.tool === 'reply') {
        this.phase = 'finish';
      } else if (this.phase !== 'reply') {
        this.outcome = `Sorry, I could not complete your request: ${res.error}`;
        this.phase = 'reply';
      }
      return;
    }
    const out = res.output;
    switch (d.tool) {
      case 'find_customer':
        this.customerId = out.customer_id;
        this.phase = this.orderId ? 'get' : 'list';
        break;
      case 'list_orders': {
        const mention = this.request.mentions || '';
        this.candidates = out.filter((o) => mention && o.items.some((i) => i.includes(mention)));
        if (this.candidates.length === 1) {
          this.orderId = this.candidates[0].order_id;
          this.phase = 'get';
        } else {
          this.phase = 'clarify'; // none or several match: the policy says ask
        }
        break;
      }
      case 'get_order':
        this.order = out;
        this.phase = this.request.type === 'exchange' ? 'search' : 'resolve';
        break;
      case 'search_products':
        for (const p of out) this.products[p.sku] = p;
        this.phase = 'resolve';
        break;
      case 'refund':
      case 'cancel':
      case 'exchange':
        this.phase = 'reply';
        break;
      case 'reply':
        this.phase = 'finish';
        break;
      default:
        break;
    }
  }
}

let agent = null;
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });

rl.on('line', (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    send({ type: 'error', message: `agent could not parse a line from trialrun: ${e.message}` });
    return;
  }
  debug('<-', msg.type);
  switch (msg.type) {
    case 'start':
      if (msg.protocol !== PROTOCOL) {
        send({ type: 'error', message: `this agent speaks protocol ${PROTOCOL}, ` +
          `not ${msg.protocol}` });
        return;
      }
      agent = new RetailAgent(msg);
      send({ type: 'log', level: 'info', message: `task ${msg.task.id}: ` +
        `${agent.request.type || 'unknown'} request, ${agent.tools.size} tools` });
      send({ type: 'ready', protocol: PROTOCOL });
      break;
    case 'observe':
      send({ type: 'decision', ...agent.decide(msg.observation) });
      break;
    case 'feedback':
      agent.feedback(msg);
      break;
    case 'close':
      rl.close();
      break;
    default:
      send({ type: 'error', message: `unknown message type ${JSON.stringify(msg.type)}` });
  }
});

rl.on('close', () => process.exit(0));
