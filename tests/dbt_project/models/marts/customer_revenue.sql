select customer_id, customer_name, sum(amount) as revenue
from {{ ref('fct_orders') }}
group by customer_id, customer_name
