select customer_id, name as customer_name from {{ source('seeds', 'raw_customers') }}
